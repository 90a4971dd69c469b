package main

import (
	"fmt"
	"slices"
	"strings"
)

// SweepConfig is the `sweep:` section: a config with one expands into
// named runs. Variants are explicit named override sets (the study's AR
// baseline is not a point of a process × objective grid); Axes form a grid
// crossed with every variant; Seeds cross everything. Overrides given with
// -set on the command line apply to every run, after the sweep's own.
type SweepConfig struct {
	Name     string    `mapstructure:"name"`
	Variants []Variant `mapstructure:"variants"`
	Axes     []Axis    `mapstructure:"axes"`
	Seeds    []int64   `mapstructure:"seeds"`
	// Parallel is how many runs go at once (each with threads/parallel
	// libtorch threads unless threads is set); -parallel overrides it.
	Parallel int `mapstructure:"parallel"`
	// Slurm is the resources of each task of -launcher slurm.
	Slurm SlurmConfig `mapstructure:"slurm"`
}

// Variant is one named set of "key=value" overrides. After names the
// variants whose runs must all finish before this variant's runs start:
// an embedding-distance process reads the AR baseline's trained token
// embeddings, and generative perplexity needs the AR reference to exist.
type Variant struct {
	Name  string   `mapstructure:"name"`
	Set   []string `mapstructure:"set"`
	After []string `mapstructure:"after"`
}

// Axis is one grid dimension: a key and the values it takes.
type Axis struct {
	Key    string `mapstructure:"key"`
	Values []any  `mapstructure:"values"`
}

// Enabled reports whether the config asks for a sweep.
func (s SweepConfig) Enabled() bool {
	return len(s.Variants) > 0 || len(s.Axes) > 0 || len(s.Seeds) > 0
}

// Validate names the offending key.
func (s SweepConfig) Validate() error {
	if !s.Enabled() {
		return nil
	}
	if s.Name == "" {
		return fmt.Errorf("sweep.name: required when sweep.variants, sweep.axes or sweep.seeds is set")
	}
	if s.Parallel < 0 {
		return fmt.Errorf("sweep.parallel: %d, want at least 1 (0 = one at a time)", s.Parallel)
	}
	if err := s.Slurm.Validate(); err != nil {
		return err
	}
	seen := map[string]bool{}
	for i, v := range s.Variants {
		if v.Name == "" || strings.ContainsAny(v.Name, "/ ") {
			return fmt.Errorf("sweep.variants[%d].name: %q must be non-empty without '/' or spaces", i, v.Name)
		}
		if seen[v.Name] {
			return fmt.Errorf("sweep.variants[%d].name: %q appears twice", i, v.Name)
		}
		seen[v.Name] = true
		for _, kv := range v.Set {
			if !strings.Contains(kv, "=") {
				return fmt.Errorf("sweep.variants[%d].set: %q is not key=value", i, kv)
			}
		}
	}
	for i, v := range s.Variants {
		for _, dep := range v.After {
			if !seen[dep] {
				return fmt.Errorf("sweep.variants[%d].after: %q is not a variant of this sweep", i, dep)
			}
		}
	}
	if _, err := s.waves(); err != nil {
		return err
	}
	for i, a := range s.Axes {
		if a.Key == "" || len(a.Values) == 0 {
			return fmt.Errorf("sweep.axes[%d]: needs a key and at least one value", i)
		}
	}
	return nil
}

// waves gives each variant its wave: 0 without `after`, else one more
// than the latest wave it waits for. A cycle is an error naming it.
func (s SweepConfig) waves() (map[string]int, error) {
	after := map[string][]string{}
	for _, v := range s.Variants {
		after[v.Name] = v.After
	}
	wave := map[string]int{}
	const visiting = -1
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch w, ok := wave[name]; {
		case ok && w == visiting:
			return fmt.Errorf("sweep.variants: `after` makes a cycle: %s", strings.Join(append(path, name), " → "))
		case ok:
			return nil
		}
		wave[name] = visiting
		w := 0
		for _, dep := range after[name] {
			if err := visit(dep, append(path, name)); err != nil {
				return err
			}
			w = max(w, wave[dep]+1)
		}
		wave[name] = w
		return nil
	}
	for _, v := range s.Variants {
		if err := visit(v.Name, nil); err != nil {
			return nil, err
		}
	}
	return wave, nil
}

// PlannedRun is one run of a sweep: its unique name, the variant label
// the report groups by (seeds of one variant share it), its overrides, and
// its wave (runs of a wave start only when every earlier wave finished).
type PlannedRun struct {
	Name    string
	Variant string
	Seed    int64
	Sets    []string
	Wave    int
}

// Plan expands the sweep deterministically: variants (or one unnamed
// variant) × axis grid × seeds, ordered by wave and, within a wave, seed
// first: every variant's first seed runs before any variant's second, so
// a sweep stopped part way has one run of each variant to compare rather
// than both seeds of the first few.
func (s SweepConfig) Plan() []PlannedRun {
	waves, _ := s.waves()
	variants := s.Variants
	if len(variants) == 0 {
		variants = []Variant{{}}
	}
	grid := [][]string{nil}
	for _, a := range s.Axes {
		var next [][]string
		for _, g := range grid {
			for _, v := range a.Values {
				next = append(next, append(append([]string{}, g...), fmt.Sprintf("%s=%v", a.Key, v)))
			}
		}
		grid = next
	}
	seeds := s.Seeds
	var out []PlannedRun
	seedIndex := map[string]int{}
	for _, v := range variants {
		for _, g := range grid {
			label := v.Name
			for _, kv := range g {
				k, val, _ := strings.Cut(kv, "=")
				label = joinLabel(label, k+"="+val)
			}
			if label == "" {
				label = "default"
			}
			sets := append(append([]string{}, v.Set...), g...)
			if len(seeds) == 0 {
				out = append(out, PlannedRun{Name: s.Name + "/" + label, Variant: label, Sets: sets, Wave: waves[v.Name]})
				continue
			}
			for i, seed := range seeds {
				name := fmt.Sprintf("%s/%s/seed%d", s.Name, label, seed)
				seedIndex[name] = i
				out = append(out, PlannedRun{
					Name: name, Variant: label, Seed: seed,
					Sets: append(append([]string{}, sets...), fmt.Sprintf("seed=%d", seed)), Wave: waves[v.Name],
				})
			}
		}
	}
	slices.SortStableFunc(out, func(a, b PlannedRun) int {
		if a.Wave != b.Wave {
			return a.Wave - b.Wave
		}
		return seedIndex[a.Name] - seedIndex[b.Name]
	})
	return out
}

func joinLabel(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}
