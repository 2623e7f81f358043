package drift

import (
	"strings"
	"testing"
)

func TestOwners(t *testing.T) {
	o, err := ParseOwners("category:plan_correction=product, category:login_problem=web,\nteam:*=support\n# marketing owns the web channel\nchannel:web=marketing,*=cx")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ dim, key, want string }{
		{"category", "plan_correction", "product"},
		{"category", "login_problem", "web"},
		{"category", "refund_request", "cx"},
		{"team", "alpha", "support"},
		{"channel", "web", "marketing"},
		{"channel", "phone", "cx"},
		{"overall", "", "cx"},
	} {
		if got := o.Owner(tc.dim, tc.key); got != tc.want {
			t.Errorf("Owner(%s, %s) = %s, want %s", tc.dim, tc.key, got, tc.want)
		}
	}
}

func TestOwnersErrors(t *testing.T) {
	_, err := ParseOwners("category:a=product,category:a=web,agent:x=y,team=support,category:b=Product Team,channel:=x")
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`"category:a=web": category:a is given an owner twice`,
		`"agent:x=y": dimension "agent"`,
		`"team=support": want dimension:key=owner`,
		`"category:b=Product Team": owner "Product Team"`,
		`"channel:=x": want dimension:key=owner`,
		"no default owner: add a rule *=owner",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}
