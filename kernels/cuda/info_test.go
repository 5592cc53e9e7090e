package cuda_test

import (
	"regexp"
	"testing"

	"github.com/gearbox-inference/gearbox/kernels"
	"github.com/gearbox-inference/gearbox/kernels/cuda"
)

// uuidForm is a device UUID as nvidia-smi prints it.
var uuidForm = regexp.MustCompile(`^(GPU|MIG)-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// TestDeviceIdentity: the backend names its GPU by UUID, in nvidia-smi's
// form, which is what GPU telemetry finds the device by; the device count
// is what kernels.Count reports and covers the device.
func TestDeviceIdentity(t *testing.T) {
	g := gpu(t).(*cuda.Backend)
	info := g.Info()
	if !uuidForm.MatchString(info.UUID) || g.UUID() != info.UUID {
		t.Errorf("Info().UUID %q, UUID() %q; want one GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", info.UUID, g.UUID())
	}
	n, err := cuda.DeviceCount()
	if err != nil || n <= info.Ordinal {
		t.Fatalf("DeviceCount() = %d, %v; want more than device %d", n, err, info.Ordinal)
	}
	if k, err := kernels.Count("cuda"); k != n || err != nil {
		t.Errorf("kernels.Count(cuda) = %d, %v; want %d", k, err, n)
	}
}

// TestOpenWorkersSpreads: one worker more than there are GPUs, on "cuda",
// opens every GPU once, each with its own UUID, and the last worker shares
// cuda:0.
func TestOpenWorkersSpreads(t *testing.T) {
	gpu(t)
	n, err := cuda.DeviceCount()
	if err != nil {
		t.Fatal(err)
	}
	p, err := kernels.OpenWorkers("cuda", n+1)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if len(p.Backends) != n || p.Workers[n] != p.Workers[0] || p.Workers[0].Name() != "cuda:0" {
		t.Fatalf("%d backends, worker %d on %s, worker 0 on %s; want %d, both on cuda:0", len(p.Backends), n, p.Workers[n].Name(), p.Workers[0].Name(), n)
	}
	seen := map[string]bool{}
	for _, b := range p.Backends {
		u := b.(*cuda.Backend).UUID()
		if seen[u] {
			t.Errorf("%s has UUID %s, as another device does", b.Name(), u)
		}
		seen[u] = true
	}
}
