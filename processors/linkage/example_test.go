package linkage_test

import (
	"fmt"

	"github.com/cxlink/cxlink/processors/linkage"
)

// Nine teams' employee engagement (x) and their customers' scores (y): the example of R's
// ?cor.test (Hollander & Wolfe 1973), whose published figures the output matches. With
// three teams there is no coefficient to report, and the caller says so.
func ExampleCorrelate() {
	x := []float64{44.4, 45.9, 41.9, 53.3, 44.7, 44.1, 50.7, 45.2, 60.1}
	y := []float64{2.6, 3.1, 2.5, 5.0, 3.6, 4.0, 5.2, 2.8, 3.8}
	c, ok := linkage.Correlate(x, y)
	fmt.Println(ok, c.N, "teams")
	fmt.Printf("Pearson r = %.7f, 95%% CI [%.7f, %.7f], t = %.4f, df = %d, p = %.4f\n",
		c.Pearson, c.CILow, c.CIHigh, c.T, c.DF, c.P)
	fmt.Printf("Spearman rho = %.1f\n", c.Spearman)

	_, ok = linkage.Correlate(x[:3], y[:3])
	fmt.Println(ok, "with 3 teams")
	// Output:
	// true 9 teams
	// Pearson r = 0.5711816, 95% CI [-0.1497426, 0.8955795], t = 1.8411, df = 7, p = 0.1082
	// Spearman rho = 0.6
	// false with 3 teams
}
