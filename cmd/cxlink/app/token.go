package app

import (
	"errors"
	"fmt"

	"github.com/cxlink/cxlink/ingest/auth"
)

// runToken is `cxlink token <source> [types=…] [teams=…]`: a new random API token, and
// the line that lets it in with its scope, to add to CXLINK_AUTH_FILE. Only the line is
// kept by cxlink; the token is shown once, here.
func runToken(args []string, opts Options) error {
	if len(args) < 1 || len(args) > 3 {
		return errors.New("usage: cxlink token <source> [types=survey_response,ticket,employee_pulse] [teams=alpha,bravo]\n" +
			"  (prints a new API token for the source and its CXLINK_AUTH_FILE line; without types=, the token may send\n" +
			"  survey_response and ticket events; employee pulses need types=employee_pulse: give those to HR sources only)")
	}
	token, line, err := auth.NewToken(args[0], args[1:]...)
	if err != nil {
		return err
	}
	fmt.Fprintf(opts.Stdout, "token (give it to the source; it is not stored anywhere):\n  %s\nline for CXLINK_AUTH_FILE:\n  %s\n", token, line)
	return nil
}
