package main

import (
	"archive/tar"
	"archive/zip"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// fetcher puts items into dir, downloading each archive at most once.
type fetcher struct {
	dir      string
	client   *http.Client
	offline  bool
	out      io.Writer
	archives map[string]string // URL -> downloaded temporary file
	failed   map[string]error  // URL -> why its download failed (not retried)
}

// fetch makes sure it is present and verified, reporting one line (plus
// instructions when it is not); it returns false when the file is missing
// or bad.
func (f *fetcher) fetch(ctx context.Context, it item) bool {
	dst := filepath.Join(f.dir, filepath.FromSlash(it.Path))
	sum, err := fileSHA256(dst)
	switch {
	case err == nil && (it.SHA256 == "" || sum == it.SHA256):
		f.report("ok", it, sum)
		return true
	case err == nil:
		fmt.Fprintf(f.out, "%-9s %s: sha256 %s, want %s\n", "BAD", dst, sum, it.SHA256)
		f.instructions(it, dst, "delete it and run datafetch again, or replace it with the right file")
		return false
	case !errors.Is(err, fs.ErrNotExist):
		fmt.Fprintf(f.out, "%-9s %s: %v\n", "BAD", dst, err)
		return false
	case f.offline:
		fmt.Fprintf(f.out, "%-9s %s\n", "missing", dst)
		f.instructions(it, dst, "")
		return false
	}
	if sum, err = f.download(ctx, it, dst); err != nil {
		fmt.Fprintf(f.out, "%-9s %s: %v\n", "FAILED", dst, err)
		f.instructions(it, dst, "")
		return false
	}
	f.report("fetched", it, sum)
	return true
}

func (f *fetcher) report(status string, it item, sum string) {
	check := "sha256 verified"
	if it.SHA256 == "" {
		check = "unpinned, sha256 " + sum
	}
	fmt.Fprintf(f.out, "%-9s %s (%s)\n", status, it.Path, check)
}

func (f *fetcher) instructions(it item, dst, extra string) {
	if abs, err := filepath.Abs(dst); err == nil {
		dst = abs
	}
	src := it.URL
	if it.Member != "" {
		src = fmt.Sprintf("%s (the file %s inside it)", it.URL, it.Member)
	}
	fmt.Fprintf(f.out, "          download %s\n          and save it as %s", src, dst)
	if it.SHA256 != "" {
		fmt.Fprintf(f.out, " (sha256 %s)", it.SHA256)
	}
	fmt.Fprintln(f.out)
	if extra != "" {
		fmt.Fprintf(f.out, "          %s\n", extra)
	}
}

// download writes the item to dst through a temporary file, which only
// gets its name once the hash matches.
func (f *fetcher) download(ctx context.Context, it item, dst string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".part*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	if it.Member == "" {
		err = f.get(ctx, it.URL, w)
	} else {
		err = f.extract(ctx, it, w)
	}
	if err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if it.SHA256 != "" && sum != it.SHA256 {
		return "", fmt.Errorf("downloaded content has sha256 %s, want %s (not saved)", sum, it.SHA256)
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return sum, os.Rename(tmp.Name(), dst)
}

func (f *fetcher) get(ctx context.Context, url string, w io.Writer) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	return nil
}

// extract copies the archive entry whose base name is it.Member to w.
func (f *fetcher) extract(ctx context.Context, it item, w io.Writer) error {
	arch, err := f.archive(ctx, it.URL)
	if err != nil {
		return err
	}
	if strings.HasSuffix(it.URL, ".zip") {
		z, err := zip.OpenReader(arch)
		if err != nil {
			return fmt.Errorf("%s: %w", it.URL, err)
		}
		defer z.Close()
		for _, e := range z.File {
			if path.Base(e.Name) == it.Member && !e.FileInfo().IsDir() {
				r, err := e.Open()
				if err != nil {
					return fmt.Errorf("%s: %s: %w", it.URL, e.Name, err)
				}
				defer r.Close()
				_, err = io.Copy(w, r)
				return err
			}
		}
		return fmt.Errorf("%s holds no %s", it.URL, it.Member)
	}
	file, err := os.Open(arch)
	if err != nil {
		return err
	}
	defer file.Close()
	gz, err := gzip.NewReader(file)
	if err != nil {
		return fmt.Errorf("%s: %w", it.URL, err)
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return fmt.Errorf("%s holds no %s", it.URL, it.Member)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", it.URL, err)
		}
		if h.Typeflag == tar.TypeReg && path.Base(h.Name) == it.Member {
			_, err = io.Copy(w, tr)
			return err
		}
	}
}

// archive downloads url once into the data folder's temporary area.
func (f *fetcher) archive(ctx context.Context, url string) (string, error) {
	if p, ok := f.archives[url]; ok {
		return p, nil
	}
	if err, ok := f.failed[url]; ok {
		return "", err
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(f.dir, ".datafetch-archive*")
	if err != nil {
		return "", err
	}
	err = f.get(ctx, url, tmp)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if f.archives == nil {
		f.archives, f.failed = map[string]string{}, map[string]error{}
	}
	if err != nil {
		os.Remove(tmp.Name())
		f.failed[url] = err
		return "", err
	}
	f.archives[url] = tmp.Name()
	return tmp.Name(), nil
}

func (f *fetcher) cleanup() {
	for _, p := range f.archives {
		os.Remove(p)
	}
}

func fileSHA256(p string) (string, error) {
	file, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer file.Close()
	h := sha256.New()
	if _, err := io.Copy(h, file); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
