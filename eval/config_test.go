package eval

import (
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	cases := []struct {
		edit func(*Config)
		want []string
	}{
		{func(c *Config) { c.TDraws, c.BatchSize = 0, 0 }, []string{"eval.t_draws: 0, want at least 1", "eval.batch_size: 0, want at least 1"}},
		{func(c *Config) { c.MaxBatches, c.LambadaLimit = -1, -2 }, []string{"eval.max_batches: -1", "eval.lambada_limit: -2"}},
		{func(c *Config) { c.GenSteps = []int{8, 0} }, []string{"eval.gen_steps[1]: 0, want a positive step count"}},
		{func(c *Config) { c.GenSampler = "greedy" }, []string{`eval.gen_sampler: "greedy" is not one of`}},
		{func(c *Config) {
			c.ZeroShot = []ZeroShot{{Name: "wt", Paths: []string{"a"}}, {Name: "wt", Detokenizer: "moses"}, {Name: "a b", Paths: []string{"b"}}}
		}, []string{`eval.zero_shot[1].name: "wt" appears twice`, "eval.zero_shot[1].paths: no sources given",
			`eval.zero_shot[1].detokenizer: "moses" is not one of none|wikitext|ptb|lambada`, `eval.zero_shot[2].name: "a b" must be`}},
	}
	for _, c := range cases {
		cfg := DefaultConfig()
		c.edit(&cfg)
		err := cfg.Validate()
		for _, w := range c.want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("error %v, want it to contain %q", err, w)
			}
		}
	}
}
