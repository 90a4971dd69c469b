// Command datafetch downloads the public datasets the project uses into a
// data folder, checking their SHA-256, or (with -offline) only checks what
// is there and says what is missing and where to put it.
//
//	datafetch [-dir DIR] [-only a,b] [-all] [-offline] [-list]
//
// DIR defaults to $DATA_DIR, else "datasets" (the data package's default).
// Files already present are verified, never downloaded again. The exit
// status is 1 when a wanted file is missing or fails its check.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, manifest, &http.Client{Timeout: 30 * time.Minute}))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer, items []item, client *http.Client) int {
	fs := flag.NewFlagSet("datafetch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", cmp.Or(os.Getenv("DATA_DIR"), "datasets"), "data folder ($DATA_DIR, else datasets)")
	only := fs.String("only", "", "comma-separated item names to fetch (see -list)")
	all := fs.Bool("all", false, "also fetch the optional (large) items")
	offline := fs.Bool("offline", false, "do not download: only check what is present")
	list := fs.Bool("list", false, "list the items and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *list {
		for _, it := range items {
			opt := ""
			if it.Optional {
				opt = " (optional)"
			}
			fmt.Fprintf(stdout, "%-18s %-36s %s%s\n", it.Name, it.Path, it.URL, opt)
		}
		return 0
	}
	wanted, err := selectItems(items, *only, *all)
	if err != nil {
		fmt.Fprintln(stderr, "datafetch:", err)
		return 2
	}
	f := &fetcher{dir: *dir, client: client, offline: *offline, out: stdout}
	defer f.cleanup()
	bad := 0
	for _, it := range wanted {
		if !f.fetch(ctx, it) {
			bad++
		}
	}
	if bad > 0 {
		fmt.Fprintf(stdout, "\n%d file(s) missing or bad in %s. Put them at the paths shown (or fix their content), "+
			"run `make data` with network access, or point DATA_DIR / data.dir at a folder that has them.\n", bad, *dir)
		return 1
	}
	fmt.Fprintf(stdout, "all %d file(s) present in %s\n", len(wanted), *dir)
	return 0
}

// selectItems picks the items named in only (all non-optional ones when
// only is empty; optional ones too with all).
func selectItems(items []item, only string, all bool) ([]item, error) {
	var names []string
	if only != "" {
		names = strings.Split(only, ",")
		for _, n := range names {
			if !slices.ContainsFunc(items, func(it item) bool { return it.Name == n }) {
				return nil, fmt.Errorf("unknown item %q (see -list)", n)
			}
		}
	}
	var out []item
	for _, it := range items {
		if (names == nil && (all || !it.Optional)) || slices.Contains(names, it.Name) {
			out = append(out, it)
		}
	}
	return out, nil
}
