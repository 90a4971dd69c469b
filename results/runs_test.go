package results

import (
	"errors"
	"slices"
	"testing"
)

func TestStartRun(t *testing.T) {
	info := RunInfo{Name: "mdlm-s1", Sweep: "owt", Variant: "mdlm", ConfigHash: "h1", Seed: 1,
		Tags: map[string]any{"objective": "mdlm"}}
	tests := []struct {
		name        string
		before      func(t *testing.T, s *Store, id int64) // after a first StartRun
		again       RunInfo
		wantResumed bool
		wantErr     error
		wantStatus  Status
		wantTries   int
	}{
		{"killed while running is resumed", func(*testing.T, *Store, int64) {}, info, true, nil, StatusRunning, 2},
		{"failed is resumed", func(t *testing.T, s *Store, id int64) {
			if err := s.FinishRun(id, errors.New("out of memory")); err != nil {
				t.Fatal(err)
			}
		}, info, true, nil, StatusRunning, 2},
		{"finished is refused", func(t *testing.T, s *Store, id int64) {
			if err := s.FinishRun(id, nil); err != nil {
				t.Fatal(err)
			}
		}, info, false, ErrFinished, StatusFinished, 1},
		{"other config is refused", func(*testing.T, *Store, int64) {},
			RunInfo{Name: info.Name, ConfigHash: "h2"}, false, ErrConfigMismatch, StatusRunning, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			id, resumed, err := s.StartRun(info)
			if err != nil || resumed {
				t.Fatalf("first StartRun = %d, %v, %v", id, resumed, err)
			}
			tc.before(t, s, id)
			id2, resumed, err := s.StartRun(tc.again)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("second StartRun error %v, want %v", err, tc.wantErr)
			}
			if resumed != tc.wantResumed || (err == nil && id2 != id) {
				t.Fatalf("second StartRun = id %d resumed %v; want id %d resumed %v", id2, resumed, id, tc.wantResumed)
			}
			if st, err := s.RunStatus(info.Name); err != nil || st != tc.wantStatus {
				t.Fatalf("RunStatus = %q, %v; want %q", st, err, tc.wantStatus)
			}
			runs, err := s.Runs(RunFilter{Names: []string{info.Name}})
			if err != nil || len(runs) != 1 {
				t.Fatalf("Runs = %v, %v", runs, err)
			}
			r := runs[0]
			if r.Attempts != tc.wantTries || r.Error != "" && r.Status == StatusRunning {
				t.Fatalf("run after resume: attempts %d error %q", r.Attempts, r.Error)
			}
			if r.Variant != "mdlm" || r.Sweep != "owt" || r.Seed != 1 || r.Tags["objective"] != "mdlm" || r.StartedAt.IsZero() {
				t.Fatalf("stored run fields wrong: %+v", r)
			}
		})
	}
}

func TestFinishRunAndStatus(t *testing.T) {
	s := newStore(t)
	id, _, err := s.StartRun(RunInfo{Name: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FinishRun(id, errors.New("nan loss")); err != nil {
		t.Fatal(err)
	}
	runs, _ := s.Runs(RunFilter{})
	if runs[0].Status != StatusFailed || runs[0].Error != "nan loss" || runs[0].FinishedAt.IsZero() {
		t.Fatalf("failed run stored as %+v", runs[0])
	}
	if err := s.FinishRun(999, nil); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FinishRun of a missing id = %v, want ErrNotFound", err)
	}
	if _, err := s.RunStatus("nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("RunStatus of a missing name = %v, want ErrNotFound", err)
	}
	if _, _, err := s.StartRun(RunInfo{}); err == nil {
		t.Fatal("a run without a name was accepted")
	}
}

func TestRunsFilter(t *testing.T) {
	s := newStore(t)
	for _, r := range []RunInfo{
		{Name: "a1", Sweep: "x", Variant: "a"},
		{Name: "a2", Sweep: "x", Variant: "a"},
		{Name: "b1", Sweep: "x", Variant: "b"},
		{Name: "c1", Sweep: "y", Variant: "a"},
	} {
		id, _, err := s.StartRun(r)
		if err != nil {
			t.Fatal(err)
		}
		if r.Name == "a2" {
			if err := s.FinishRun(id, nil); err != nil {
				t.Fatal(err)
			}
		}
	}
	tests := []struct {
		name string
		f    RunFilter
		want []string
	}{
		{"all", RunFilter{}, []string{"a1", "a2", "b1", "c1"}},
		{"sweep", RunFilter{Sweep: "x"}, []string{"a1", "a2", "b1"}},
		{"sweep and variant", RunFilter{Sweep: "x", Variants: []string{"a"}}, []string{"a1", "a2"}},
		{"names", RunFilter{Names: []string{"c1", "b1"}}, []string{"b1", "c1"}},
		{"status", RunFilter{Status: []Status{StatusFinished}}, []string{"a2"}},
		{"nothing", RunFilter{Sweep: "z"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs, err := s.Runs(tc.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range runs {
				got = append(got, r.Name)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}
