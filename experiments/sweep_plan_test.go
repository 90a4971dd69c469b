package main

import (
	"slices"
	"strings"
	"testing"
)

func TestOnlyVariants(t *testing.T) {
	plan := []PlannedRun{{Name: "s/ar/seed1", Variant: "ar"}, {Name: "s/d3pm/seed1", Variant: "d3pm"},
		{Name: "s/ar/seed2", Variant: "ar"}, {Name: "s/d3pm/seed2", Variant: "d3pm"}, {Name: "s/sedd/seed1", Variant: "sedd"}}
	todo := []PlannedRun{plan[1], plan[2], plan[3], plan[4]} // s/ar/seed1 finished
	for _, c := range []struct {
		only string
		want []string
	}{
		{"", []string{"s/d3pm/seed1", "s/ar/seed2", "s/d3pm/seed2", "s/sedd/seed1"}},
		{"d3pm", []string{"s/d3pm/seed1", "s/d3pm/seed2"}},
		{"ar, sedd", []string{"s/ar/seed2", "s/sedd/seed1"}},
		{"s/d3pm/seed2,sedd", []string{"s/d3pm/seed2", "s/sedd/seed1"}},
	} {
		got, err := onlyVariants(plan, todo, c.only)
		var names []string
		for _, r := range got {
			names = append(names, r.Name)
		}
		if err != nil || !slices.Equal(names, c.want) {
			t.Errorf("-only %q: %v, %v; want %v", c.only, names, err, c.want)
		}
	}
	if _, err := onlyVariants(plan, todo, "d3pm,mdlm"); err == nil || !strings.Contains(err.Error(), `"mdlm"`) || !strings.Contains(err.Error(), "variants: ar, d3pm, sedd") {
		t.Errorf("-only with an unknown variant: %v", err)
	}
}
