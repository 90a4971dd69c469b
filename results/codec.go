package results

import (
	"database/sql"
	"encoding/json"
	"math"
	"time"
)

// formatTime is the text form of times in the runs and evaluations tables:
// UTC RFC 3339, which sorts as text and reads well in the sqlite3 shell.
func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// unixSeconds is the form of metric times: compact for the many metric rows.
func unixSeconds(t time.Time) float64 { return float64(t.UnixNano()) / 1e9 }

func fromUnixSeconds(s float64) time.Time {
	sec, frac := math.Modf(s)
	return time.Unix(int64(sec), int64(math.Round(frac*1e9)))
}

// sqlFloat binds NaN as NULL explicitly. SQLite would do the same silently;
// being explicit documents that NULL in a value column means NaN.
func sqlFloat(v float64) any {
	if math.IsNaN(v) {
		return nil
	}
	return v
}

// goFloat is the inverse of sqlFloat.
func goFloat(v sql.NullFloat64) float64 {
	if !v.Valid {
		return math.NaN()
	}
	return v.Float64
}

// marshalJSON encodes free-form maps (tags, params). encoding/json sorts map
// keys, so equal maps give equal text: the evaluations table relies on this
// for its UNIQUE(run_id, task, metric, params) key. A nil map is "{}".
func marshalJSON[V any](m map[string]V) (string, error) {
	if m == nil {
		return "{}", nil
	}
	b, err := json.Marshal(m)
	return string(b), err
}

// marshalScores encodes per-sample scores. JSON has no NaN or Inf, so
// non-finite scores are written as null and read back as NaN.
func marshalScores(m map[string]float64) (string, error) {
	out := make(map[string]any, len(m))
	for k, v := range m {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			out[k] = nil
		} else {
			out[k] = v
		}
	}
	return marshalJSON(out)
}

func unmarshalScores(s string) (map[string]float64, error) {
	var raw map[string]*float64
	if err := json.Unmarshal([]byte(s), &raw); err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(raw))
	for k, v := range raw {
		if v == nil {
			out[k] = math.NaN()
		} else {
			out[k] = *v
		}
	}
	return out, nil
}
