// Package dist is data-parallel training's communication, on libtorch's
// own distributed layer (c10d) rather than a home-made one: a process
// group over a TCPStore (Gloo on CPU, NCCL on CUDA) and the collectives a
// trainer needs — all-reduce in flat buckets, broadcast, barrier. The C++
// side is dist/c10d, compiled by tools/torchprep into
// .torch/lib/libdifflm_c10d.so (make setup).
//
// Like every torch caller in the project, a Group is used from one locked
// goroutine (torchx.Lock), and its collectives are called by every rank
// in the same order with tensors of the same shapes.
package dist

// #cgo CFLAGS: -I${SRCDIR}/c10d
// #cgo LDFLAGS: -L${SRCDIR}/../.torch/lib -Wl,-rpath,${SRCDIR}/../.torch/lib -ldifflm_c10d
// #include <stdlib.h>
// #include "c10d.h"
import "C"

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/sugarme/gotch/ts"
)

// BucketBytes is the size of the flat buffers gradients are all-reduced
// in: torch DDP's default (25 MiB), few enough calls for a small model,
// bounded extra memory for a large one.
const BucketBytes = 25 << 20

// Group is one rank's membership of a process group.
type Group struct {
	g           C.c10d_group
	rank, world int
}

// New joins the process group o describes; rank 0 hosts its TCPStore at
// o.Addr:o.Port. It returns when all o.World ranks have joined, or fails
// after o.Timeout.
func New(o Options) (*Group, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	backend, host := C.CString(o.Backend), C.CString(o.Addr)
	defer C.free(unsafe.Pointer(backend))
	defer C.free(unsafe.Pointer(host))
	var g C.c10d_group
	msg := C.c10d_new_group(backend, host, C.int(o.Port), C.int(o.Rank), C.int(o.World),
		C.int(o.Timeout.Milliseconds()), &g)
	if err := fromC(msg); err != nil {
		return nil, fmt.Errorf("dist: rank %d of %d, store %s:%d: %w", o.Rank, o.World, o.Addr, o.Port, err)
	}
	return &Group{g: g, rank: o.Rank, world: o.World}, nil
}

// Rank is this process's rank, 0 … World()−1.
func (g *Group) Rank() int { return g.rank }

// World is the number of ranks.
func (g *Group) World() int { return g.world }

// AllReduce sums each tensor over the ranks in place, or averages it when
// average is set, in flat buckets of BucketBytes.
func (g *Group) AllReduce(xs []*ts.Tensor, average bool) error {
	if len(xs) == 0 {
		return nil
	}
	avg := C.int(0)
	if average {
		avg = 1
	}
	handles := handlesOf(xs)
	return g.wrap(C.c10d_allreduce(g.g, &handles[0], C.int(len(xs)), avg, C.longlong(BucketBytes)))
}

// Broadcast overwrites every rank's tensors with root's.
func (g *Group) Broadcast(xs []*ts.Tensor, root int) error {
	if len(xs) == 0 {
		return nil
	}
	handles := handlesOf(xs)
	return g.wrap(C.c10d_broadcast(g.g, &handles[0], C.int(len(xs)), C.int(root)))
}

// Barrier returns when every rank has reached it.
func (g *Group) Barrier() error { return g.wrap(C.c10d_barrier(g.g)) }

// Close leaves the group. The Group is unusable afterwards.
func (g *Group) Close() {
	if g.g != nil {
		C.c10d_free_group(g.g)
		g.g = nil
	}
}

// HasNCCL reports whether the c10d library was built with NCCL.
func HasNCCL() bool { return C.c10d_has_nccl() == 1 }

// handlesOf lists the tensors' C++ handles. The slice holds C pointers
// only, so passing it to C is allowed.
func handlesOf(xs []*ts.Tensor) []unsafe.Pointer {
	out := make([]unsafe.Pointer, len(xs))
	for i, x := range xs {
		out[i] = x.Ctensor()
	}
	return out
}

// wrap turns a collective's error message into an error naming this rank
// and, when it can tell, the ranks that stopped: a rank that dies makes
// the others' next collective fail, and its heartbeat stops.
func (g *Group) wrap(msg *C.char) error {
	err := fromC(msg)
	if err == nil {
		return nil
	}
	who := ""
	switch dead := g.SilentRanks(); {
	case dead == nil:
		who = "; rank 0, which hosts the store, is unreachable: it has stopped"
	case len(dead) > 0:
		who = fmt.Sprintf("; rank %s stopped (no heartbeat)", joinInts(dead))
	}
	return fmt.Errorf("dist: rank %d of %d: %w%s", g.rank, g.world, err, who)
}

// SilentRanks lists the other ranks whose heartbeat has stopped (it
// watches for 1.5 s), or returns nil when the store is unreachable, that
// is, rank 0 has stopped.
func (g *Group) SilentRanks() []int {
	out := make([]C.int, g.world)
	n := int(C.c10d_silent_ranks(g.g, &out[0]))
	if n < 0 {
		return nil
	}
	ranks := make([]int, 0, n)
	for _, r := range out[:n] {
		ranks = append(ranks, int(r))
	}
	return ranks
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ", ")
}

// fromC turns the shim's error message (NULL: none) into an error and
// frees it.
func fromC(msg *C.char) error {
	if msg == nil {
		return nil
	}
	defer C.free(unsafe.Pointer(msg))
	return errors.New(C.GoString(msg))
}

// DefaultTimeout bounds joining and each collective unless configured:
// long enough for rank 0's evaluation between two steps, short enough
// that a dead rank is noticed.
const DefaultTimeout = 10 * time.Minute
