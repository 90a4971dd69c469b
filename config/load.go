// Package config loads experiment configuration from YAML through viper,
// strictly: a key that the config struct does not have, a value of the
// wrong type, or a value that fails validation is an error that names the
// file and the key (and, for a typo, the closest valid key). Nothing is
// silently ignored, because a mistyped key in an ablation silently runs
// the default and poisons the comparison.
//
// The struct being loaded owns its defaults (set before Load) and its
// validation; this package only knows about mapstructure tags.
package config

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"

	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// Validator is implemented by config structs; errors name the key.
type Validator interface{ Validate() error }

// Loaded describes where a config came from and what it resolved to.
type Loaded struct {
	Path string // the file read ("" for defaults only)
	YAML string // the resolved config (defaults + file + overrides)
	Hash string // sha256 of YAML, first 12 hex digits
}

// Resolve finds a config by path or by bare name ("absorbing" or
// "absorbing.yaml") in the given folders.
func Resolve(name string, dirs []string) (string, error) {
	if name == "" {
		return "", errors.New("no config named")
	}
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	cands := []string{name}
	if filepath.Ext(name) == "" {
		cands = append(cands, name+".yaml", name+".yml")
	}
	if !strings.ContainsRune(name, filepath.Separator) {
		for _, d := range dirs {
			for _, c := range cands {
				p := filepath.Join(d, c)
				if _, err := os.Stat(p); err == nil {
					return p, nil
				}
			}
		}
	}
	return "", fmt.Errorf("config %q: no such file (looked in . and %s)", name, strings.Join(dirs, ", "))
}

// Load reads path (skipped when empty), applies "key=value" overrides
// (values parsed as YAML scalars or flow lists), checks every key and type
// against dst's mapstructure tags, decodes into dst (which holds the
// defaults) and validates it.
func Load(path string, sets []string, dst Validator) (Loaded, error) {
	where := path
	if where == "" {
		where = "defaults"
	}
	v := viper.New()
	if path != "" {
		v.SetConfigFile(path)
		v.SetConfigType("yaml")
		if err := v.ReadInConfig(); err != nil {
			return Loaded{}, fmt.Errorf("config %s: %w", path, err)
		}
	}
	schema := schemaOf(dst)
	for _, kv := range sets {
		key, val, ok := strings.Cut(kv, "=")
		if !ok || key == "" {
			return Loaded{}, fmt.Errorf("-set %q: want key=value", kv)
		}
		var parsed any
		if err := yaml.Unmarshal([]byte(val), &parsed); err != nil {
			return Loaded{}, fmt.Errorf("-set %s: value %q: %w", key, val, err)
		}
		if parsed == nil {
			// "key=" (or "key=~") means the empty value: YAML reads it as
			// null, which viper would take as "not set" and keep the
			// default (eval.ar_reference= silently kept its path).
			parsed = ""
		}
		if err := schema.checkKey(strings.ToLower(key)); err != nil {
			return Loaded{}, fmt.Errorf("-set %s: %w", key, err)
		}
		v.Set(key, parsed)
	}
	keys := v.AllKeys()
	sort.Strings(keys)
	for _, k := range keys {
		if err := schema.checkKey(k); err != nil {
			return Loaded{}, fmt.Errorf("config %s: %w", where, err)
		}
		if err := schema.checkType(k, v.Get(k)); err != nil {
			return Loaded{}, fmt.Errorf("config %s: %w", where, err)
		}
	}
	err := v.Unmarshal(dst, func(dc *mapstructure.DecoderConfig) {
		dc.ErrorUnused = true
		dc.WeaklyTypedInput = false
		dc.DecodeHook = mapstructure.ComposeDecodeHookFunc(dc.DecodeHook, autoIntHook)
	})
	if err != nil {
		return Loaded{}, fmt.Errorf("config %s: %w", where, err)
	}
	if err := dst.Validate(); err != nil {
		return Loaded{}, fmt.Errorf("config %s: %w", where, err)
	}
	text, err := Dump(dst)
	if err != nil {
		return Loaded{}, err
	}
	sum := sha256.Sum256([]byte(text))
	return Loaded{Path: path, YAML: text, Hash: hex.EncodeToString(sum[:])[:12]}, nil
}

// Dump renders a config struct as YAML with its mapstructure keys, so the
// printed config reads like the file a user writes.
func Dump(cfg any) (string, error) {
	b, err := yaml.Marshal(toMap(reflect.ValueOf(cfg)))
	if err != nil {
		return "", fmt.Errorf("dump config: %w", err)
	}
	return string(b), nil
}
