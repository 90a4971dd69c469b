//go:build unix

package data

import (
	"os"
	"syscall"
)

// mapFile maps f read-only and shared: pages come from the page cache, so
// several processes training on one corpus share its memory.
func mapFile(f *os.File, size int64) ([]byte, func() error, error) {
	b, err := syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, nil, err
	}
	return b, func() error { return syscall.Munmap(b) }, nil
}
