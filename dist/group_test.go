package dist

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dlmlab/difflm/internal/ranktest"
	"github.com/dlmlab/difflm/torchx"
	"github.com/sugarme/gotch"
	"github.com/sugarme/gotch/ts"
)

// ranks runs the scenario in world processes, one per rank.
func ranks(t *testing.T, world int, scenario string, timeout time.Duration) ([]string, []error) {
	t.Helper()
	return ranktest.Run(t, world, "TestRankHelper", "DIST_HELPER="+scenario, "DIST_TIMEOUT="+timeout.String())
}

// TestRankHelper is one rank of a scenario; it runs only under ranks.
func TestRankHelper(t *testing.T) {
	scenario := os.Getenv("DIST_HELPER")
	if scenario == "" {
		t.Skip("a rank of the multi-process tests; run by them")
	}
	torchx.Lock()
	o, ok, err := FromEnv(os.Getenv)
	if err != nil || !ok {
		t.Fatalf("FromEnv: %v %v", ok, err)
	}
	o.Backend = "gloo"
	o.Timeout, _ = time.ParseDuration(os.Getenv("DIST_TIMEOUT"))
	if scenario == "absent" && o.Rank == 1 {
		return // never joins
	}
	g, err := New(o)
	if err != nil {
		fmt.Printf("RESULT new: %v\n", err)
		t.Fatal(err)
	}
	defer g.Close()
	r := float64(o.Rank)
	switch scenario {
	case "collectives":
		a := ts.MustOfSlice([]float32{float32(r + 1), float32(2 * (r + 1))})
		b := ts.MustOfSlice([]float64{r, r * r, 1, 2, 3, 4}).MustView([]int64{2, 3}, true)
		c := ts.MustOfSlice([]float64{0.5 + r, 7 * r}) // averaged
		for _, x := range []*ts.Tensor{a, b} {
			if err := g.AllReduce([]*ts.Tensor{x}, false); err != nil {
				t.Fatal(err)
			}
		}
		if err := g.AllReduce([]*ts.Tensor{c}, true); err != nil {
			t.Fatal(err)
		}
		// Mixed dtypes in one call: separate buckets.
		d := ts.MustOfSlice([]float32{1})
		e := ts.MustOfSlice([]float64{r})
		if err := g.AllReduce([]*ts.Tensor{d, e}, false); err != nil {
			t.Fatal(err)
		}
		f := ts.MustArange(ts.IntScalar(4), gotch.Double, gotch.CPU).MustAddScalar(ts.FloatScalar(10*r), true)
		if err := g.Broadcast([]*ts.Tensor{f}, 1); err != nil {
			t.Fatal(err)
		}
		if err := g.Barrier(); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("RESULT a=%v b=%v c=%v d=%v e=%v f=%v\n", a.Vals(), b.Vals(), c.Vals(), d.Vals(), e.Vals(), f.Vals())
	case "dies", "root dies", "root resets":
		// Both have joined (heartbeats running) before one of them dies.
		if err := g.Barrier(); err != nil {
			t.Fatal(err)
		}
		if (scenario == "dies") == (o.Rank == 1) {
			if scenario == "root resets" {
				resetSockets()
			}
			os.Exit(3) // dies before the collective
		}
		x := ts.MustOfSlice([]float32{1})
		t0 := time.Now()
		err := g.AllReduce([]*ts.Tensor{x}, false)
		fmt.Printf("RESULT after %.1fs: %v\n", time.Since(t0).Seconds(), err)
		if err == nil {
			t.Fatal("all-reduce with a dead rank succeeded")
		}
	}
}

// resetSockets makes every socket of this process end with a reset (RST)
// rather than an orderly close when it exits, as the connections of a
// crashed host or a broken network end.
func resetSockets() {
	ents, _ := os.ReadDir("/proc/self/fd")
	for _, e := range ents {
		if fd, err := strconv.Atoi(e.Name()); err == nil {
			// Not a socket: ENOTSOCK, nothing to do.
			_ = syscall.SetsockoptLinger(fd, syscall.SOL_SOCKET, syscall.SO_LINGER, &syscall.Linger{Onoff: 1, Linger: 0})
		}
	}
}

func result(out string) string {
	if r := ranktest.Result(out); r != "" {
		return r
	}
	return "(no result)\n" + out
}

func TestCollectives(t *testing.T) {
	outs, errs := ranks(t, 2, "collectives", 30*time.Second)
	// a: (1,2)+(2,4); b: rank 0 (0,0,1,2,3,4) + rank 1 (1,1,1,2,3,4); c: mean of (0.5,0) and (1.5,7);
	// d: 1+1; e: 0+1; f: rank 1's arange+10.
	want := "a=[3 6] b=[1 1 2 4 6 8] c=[1 3.5] d=[2] e=[1] f=[10 11 12 13]"
	for r := range outs {
		if errs[r] != nil {
			t.Fatalf("rank %d: %v\n%s", r, errs[r], outs[r])
		}
		if got := result(outs[r]); got != want {
			t.Errorf("rank %d: %s\nwant %s", r, got, want)
		}
	}
}

func TestDeadRankIsAnErrorNotAHang(t *testing.T) {
	t0 := time.Now()
	outs, errs := ranks(t, 2, "dies", 5*time.Second)
	if errs[0] != nil {
		t.Fatalf("rank 0: %v\n%s", errs[0], outs[0])
	}
	got := result(outs[0])
	if !strings.Contains(got, "rank 0 of 2: c10d: all-reduce") || !strings.Contains(got, "rank 1 stopped (no heartbeat)") {
		t.Errorf("rank 0's error does not say who it is, what failed and which rank died: %s", got)
	}
	if el := time.Since(t0); el > 25*time.Second {
		t.Errorf("rank 0 took %v to notice", el)
	}
	t.Logf("rank 0: %s", got)
}

// TestDeadStoreHostIsNamed: rank 0 ends (its sockets close in order);
// rank 1's next collective fails and its error says that the store's
// host has gone. When one of the connections happens to be reset on the
// way, libtorch's store thread ends rank 1 first (TestResetStoreHostIsNamed);
// its message must then say the same.
func TestDeadStoreHostIsNamed(t *testing.T) {
	outs, errs := ranks(t, 2, "root dies", 5*time.Second)
	if errs[1] != nil {
		t.Logf("rank 1 ended by a reset store connection: %v", errs[1])
		assertLostStore(t, outs[1], errs[1])
		return
	}
	if got := result(outs[1]); !strings.Contains(got, "rank 1 of 2: c10d: all-reduce") || !strings.Contains(got, "rank 0, which hosts the store, is unreachable") {
		t.Errorf("rank 1's error with rank 0 dead: %s", got)
	}
}

// TestResetStoreHostIsNamed: rank 0's connections end in resets, as a
// crashed host's do. libtorch's store thread in rank 1 throws out of
// itself; rank 1 must still end with exit status 1 and a message naming
// itself, the store and rank 0, not abort with a bare C++ error.
func TestResetStoreHostIsNamed(t *testing.T) {
	outs, errs := ranks(t, 2, "root resets", 5*time.Second)
	assertLostStore(t, outs[1], errs[1])
}

func assertLostStore(t *testing.T, out string, err error) {
	t.Helper()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("rank 1 ended with %v, want exit status 1:\n%s", err, out)
	}
	for _, want := range []string{"dist: rank 1 of 2: lost the connection to the TCPStore at 127.0.0.1:",
		"Connection reset by peer", "rank 0, which hosts the store, is unreachable"} {
		if !strings.Contains(out, want) {
			t.Errorf("rank 1's output lacks %q:\n%s", want, out)
		}
	}
}

func TestAbsentRankTimesOut(t *testing.T) {
	outs, errs := ranks(t, 2, "absent", 3*time.Second)
	if errs[0] == nil {
		t.Fatalf("rank 0 joined a group whose rank 1 never came:\n%s", outs[0])
	}
	if got := result(outs[0]); !strings.Contains(got, "store 127.0.0.1") {
		t.Errorf("rank 0's error: %s", got)
	}
}
