package cuda_test

import (
	"context"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/precision"
)

// TestMemoryInfo: the device's free memory is below its total, and a KV
// cache of 1 GiB takes 1 GiB of it until it is closed (what the worker's
// KV fraction is computed from).
func TestMemoryInfo(t *testing.T) {
	g := gpuLM(t)
	dm, ok := g.(kernels.DeviceMemory)
	if !ok {
		t.Fatal("the CUDA backend does not report device memory")
	}
	ctx := context.Background()
	free, total, err := dm.MemoryInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if free <= 0 || free > total {
		t.Fatalf("free %d of total %d", free, total)
	}
	m := lmModelNamed(t, "wide")
	c := &m.Config
	perBlock := int64(c.Layers) * 2 * int64(c.KVDim()) * kernels.KVBlockSize * 2 // bf16
	blocks := int((1 << 30) / perBlock)
	kv, err := g.NewKVCache(m, precision.BF16, blocks)
	if err != nil {
		t.Fatal(err)
	}
	during, _, err := dm.MemoryInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := kv.Close(); err != nil {
		t.Fatal(err)
	}
	after, _, err := dm.MemoryInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	took := free - during
	t.Logf("free %.2f GiB of %.2f; a %d-block cache took %.3f GiB; %.2f GiB free after Close", gib(free), gib(total), blocks, gib(took), gib(after))
	if want := int64(blocks) * perBlock; took < want || took > want+(64<<20) {
		t.Errorf("a cache of %d bytes took %d bytes of device memory", want, took)
	}
	if after < during+int64(blocks)*perBlock {
		t.Errorf("Close returned %d bytes; want the cache's %d", after-during, int64(blocks)*perBlock)
	}
}

func gib(n int64) float64 { return float64(n) / (1 << 30) }
