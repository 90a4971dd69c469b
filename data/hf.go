package data

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Hugging Face datasets are read as parquet over HTTP range requests, so an
// OpenWebText-size corpus streams through a bounded block cache instead of
// being downloaded whole first.
//
// hf://datasets/OWNER/NAME[@REVISION][/PATH] maps to
// ENDPOINT/datasets/OWNER/NAME/resolve/REVISION/PATH when PATH is a
// .parquet file; otherwise every .parquet file under PATH (listed with the
// Hub's tree API, in path order) is a source. REVISION defaults to main and
// may be URL-escaped (refs%2Fconvert%2Fparquet for the auto-converted
// parquet branch). A one-segment NAME (legacy canonical datasets) is
// accepted when no PATH follows or PATH is a single file name.

type hfRef struct{ repo, rev, path string }

func parseHF(uri string) (hfRef, error) {
	rest, ok := strings.CutPrefix(uri, "hf://datasets/")
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	if !ok || parts[0] == "" {
		return hfRef{}, fmt.Errorf("data source %q: want hf://datasets/OWNER/NAME[@REVISION][/path]", uri)
	}
	n := 2
	if len(parts) == 1 || strings.HasSuffix(parts[1], ".parquet") {
		n = 1
	}
	r := hfRef{repo: strings.Join(parts[:n], "/"), rev: "main", path: strings.Join(parts[n:], "/")}
	if i := strings.LastIndexByte(r.repo, '@'); i >= 0 {
		rev, err := url.PathUnescape(r.repo[i+1:])
		if err != nil || rev == "" {
			return hfRef{}, fmt.Errorf("data source %q: bad revision %q", uri, r.repo[i+1:])
		}
		r.repo, r.rev = r.repo[:i], rev
	}
	return r, nil
}

func (r hfRef) uri(path string) string {
	return "hf://datasets/" + r.repo + "@" + url.PathEscape(r.rev) + "/" + path
}

func (r hfRef) resolveURL(endpoint, path string) string {
	return endpoint + "/datasets/" + r.repo + "/resolve/" + url.PathEscape(r.rev) + "/" + escapePath(path)
}

func (r hfRef) treeURL(endpoint string) string {
	u := endpoint + "/api/datasets/" + r.repo + "/tree/" + url.PathEscape(r.rev)
	if r.path != "" {
		u += "/" + escapePath(r.path)
	}
	return u + "?recursive=true"
}

func escapePath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// hfEndpoint is the Hub base URL: the config key, else $HF_ENDPOINT (the
// variable the Hugging Face tools read), else the public Hub.
func hfEndpoint(cfg string) string {
	e := cfg
	if e == "" {
		e = os.Getenv("HF_ENDPOINT")
	}
	if e == "" {
		e = "https://huggingface.co"
	}
	return strings.TrimRight(e, "/")
}

func openHF(ctx context.Context, client *http.Client, endpoint, uri, column string) ([]Source, error) {
	ref, err := parseHF(uri)
	if err != nil {
		return nil, err
	}
	paths := []string{ref.path}
	if !strings.HasSuffix(ref.path, ".parquet") {
		if paths, err = listHF(ctx, client, ref.treeURL(endpoint)); err != nil {
			return nil, fmt.Errorf("data source %q: %w", uri, err)
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("data source %q: no .parquet files under %q at revision %s", uri, ref.path, ref.rev)
		}
	}
	var out []Source
	for _, p := range paths {
		src, err := openHTTPParquet(ctx, client, ref.uri(p), ref.resolveURL(endpoint, p), column)
		if err != nil {
			return nil, err
		}
		out = append(out, src)
	}
	return out, nil
}

var nextLink = regexp.MustCompile(`<([^>]+)>;\s*rel="next"`)

// listHF lists the .parquet files of a tree-API listing, following its
// pagination (Link: <...>; rel="next").
func listHF(ctx context.Context, client *http.Client, u string) ([]string, error) {
	var paths []string
	for u != "" {
		resp, err := httpGet(ctx, client, u, "")
		if err != nil {
			return nil, err
		}
		var entries []struct{ Type, Path string }
		err = json.NewDecoder(resp.Body).Decode(&entries)
		resp.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", u, err)
		}
		for _, e := range entries {
			if e.Type == "file" && strings.HasSuffix(e.Path, ".parquet") {
				paths = append(paths, e.Path)
			}
		}
		u = ""
		if m := nextLink.FindStringSubmatch(resp.Header.Get("Link")); m != nil {
			u = m[1]
		}
	}
	slices.Sort(paths)
	return paths, nil
}

// openHTTPParquet probes the file's size and ETag (they fingerprint the
// cache) and returns a source that reads it by range requests.
func openHTTPParquet(ctx context.Context, client *http.Client, name, u, column string) (Source, error) {
	size, etag, err := probeHTTP(ctx, client, u)
	if err != nil {
		return nil, fmt.Errorf("data source %q: %w", name, err)
	}
	open := func(ctx context.Context) (io.ReaderAt, int64, io.Closer, error) {
		f := &httpFile{ctx: ctx, client: client, url: u, name: name, size: size, blocks: map[int64][]byte{}}
		return f, size, f, nil
	}
	return &parquetSource{name: name, fp: fmt.Sprintf("%s|%d|%s", u, size, etag), column: column, open: open}, nil
}

// probeHTTP asks for the first byte; a 206 reply carries the total size.
func probeHTTP(ctx context.Context, client *http.Client, u string) (int64, string, error) {
	resp, err := httpGet(ctx, client, u, "bytes=0-0")
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	cr := resp.Header.Get("Content-Range")
	i := strings.LastIndexByte(cr, '/')
	size, err := strconv.ParseInt(cr[i+1:], 10, 64)
	if resp.StatusCode != http.StatusPartialContent || i < 0 || err != nil {
		return 0, "", fmt.Errorf("%s: the server does not answer range requests (status %s, Content-Range %q)", u, resp.Status, cr)
	}
	return size, resp.Header.Get("ETag"), nil
}

// httpGet sends a GET (with an optional Range), retrying transient failures
// (network errors and 5xx) three times with backoff.
func httpGet(ctx context.Context, client *http.Client, u, rng string) (*http.Response, error) {
	var last error
	for attempt := range 4 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt*attempt) * 200 * time.Millisecond):
			}
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return nil, err
		}
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		resp, err := client.Do(req)
		if err != nil {
			last = err
			continue
		}
		if resp.StatusCode >= 500 {
			resp.Body.Close()
			last = fmt.Errorf("GET %s: %s", u, resp.Status)
			continue
		}
		if resp.StatusCode >= 300 {
			resp.Body.Close()
			return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return resp, nil
	}
	return nil, last
}

// httpFile is an io.ReaderAt over HTTP range requests with a small
// first-in-first-out cache of 4 MiB blocks (at most 8), so parquet's many
// small reads cost few requests and memory stays bounded.
type httpFile struct {
	ctx        context.Context
	client     *http.Client
	url, name  string
	size       int64
	mu         sync.Mutex
	blocks     map[int64][]byte
	lru        []int64
	blockBytes int64 // 0 means 4 MiB
}

const httpMaxBlocks = 8

// Close drops the cached blocks.
func (f *httpFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.blocks, f.lru = map[int64][]byte{}, nil
	return nil
}

func (f *httpFile) ReadAt(p []byte, off int64) (int, error) {
	bs := f.blockBytes
	if bs == 0 {
		bs = 4 << 20
	}
	n := 0
	for n < len(p) && off+int64(n) < f.size {
		pos := off + int64(n)
		b, err := f.block(pos/bs, bs)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], b[pos-(pos/bs)*bs:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *httpFile) block(i, bs int64) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b, ok := f.blocks[i]; ok {
		return b, nil
	}
	start, end := i*bs, min((i+1)*bs, f.size)-1
	resp, err := httpGet(f.ctx, f.client, f.url, fmt.Sprintf("bytes=%d-%d", start, end))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent {
		return nil, fmt.Errorf("%s: range request answered with %s", f.name, resp.Status)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, end-start+2))
	if err == nil && int64(len(b)) != end-start+1 {
		err = fmt.Errorf("got %d bytes of range %d-%d", len(b), start, end)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	if len(f.lru) >= httpMaxBlocks {
		delete(f.blocks, f.lru[0])
		f.lru = f.lru[1:]
	}
	f.blocks[i] = b
	f.lru = append(f.lru, i)
	return b, nil
}
