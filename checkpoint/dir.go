package checkpoint

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrNotFound is returned by Latest when a folder holds no valid checkpoint.
var ErrNotFound = errors.New("no valid checkpoint")

const (
	prefix = "ckpt-"
	suffix = ".safetensors"
)

// Path names the checkpoint of step in dir: dir/ckpt-000100.safetensors.
// Steps sort numerically, so more than six digits are fine.
func Path(dir string, step int) string {
	return filepath.Join(dir, fmt.Sprintf("%s%06d%s", prefix, step, suffix))
}

// Entry is one checkpoint file of a run folder.
type Entry struct {
	Step int
	Path string
}

// List returns the checkpoint files in dir (by name, unverified), oldest
// step first. A missing folder holds none.
func List(dir string) ([]Entry, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list checkpoints in %s: %w", dir, err)
	}
	var out []Entry
	for _, de := range des {
		name := de.Name()
		num, ok := strings.CutPrefix(name, prefix)
		if !ok || de.IsDir() {
			continue
		}
		num, ok = strings.CutSuffix(num, suffix)
		if !ok {
			continue
		}
		step, err := strconv.Atoi(num)
		if err != nil || step < 0 {
			continue
		}
		out = append(out, Entry{Step: step, Path: filepath.Join(dir, name)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Step < out[j].Step })
	return out, nil
}

// Latest returns the newest checkpoint in dir that opens and passes its
// checksum. Corrupt or truncated files (a run killed while the disk was
// failing, a copy cut short) are skipped with a warning, so a run resumes
// from the newest state it can trust.
func Latest(dir string) (string, error) {
	entries, err := List(dir)
	if err != nil {
		return "", err
	}
	for i := len(entries) - 1; i >= 0; i-- {
		r, err := Open(entries[i].Path)
		if err != nil {
			slog.Warn("skipping unusable checkpoint", "err", err)
			continue
		}
		r.Close()
		return entries[i].Path, nil
	}
	return "", fmt.Errorf("%s: %w", dir, ErrNotFound)
}

// Prune deletes all but the newest keep checkpoints in dir (keep <= 0 keeps
// all), and the temporary files that a writer killed mid-save leaves behind
// (only one trainer writes to a run folder).
func Prune(dir string, keep int) error {
	entries, err := List(dir)
	if err != nil {
		return err
	}
	var doomed []string
	if keep > 0 && len(entries) > keep {
		for _, e := range entries[:len(entries)-keep] {
			doomed = append(doomed, e.Path)
		}
	}
	temps, err := filepath.Glob(filepath.Join(dir, prefix+"*"+suffix+".tmp*"))
	if err != nil {
		return err
	}
	for _, p := range append(doomed, temps...) {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("prune checkpoints: %w", err)
		}
	}
	return nil
}
