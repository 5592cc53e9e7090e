package gpumon

import (
	"errors"
	"strings"
	"testing"
)

// TestOpen runs against whatever this machine has: with no NVIDIA driver
// (or no cgo) it checks the error; on a GPU host it checks the readings.
func TestOpen(t *testing.T) {
	d, err := Open(0)
	if errors.Is(err, ErrUnavailable) {
		if !strings.HasPrefix(err.Error(), "NVML unavailable: ") {
			t.Errorf("Open(0) error = %q; want it to start %q", err, "NVML unavailable: ")
		}
		t.Skipf("no GPU here: %v", err)
	}
	if err != nil {
		t.Fatalf("Open(0): %v", err)
	}
	defer d.Close()
	if d.Index() != 0 || d.Name() == "" || !strings.HasPrefix(d.UUID(), "GPU-") {
		t.Errorf("device index %d name %q uuid %q; want 0, a name, GPU-…", d.Index(), d.Name(), d.UUID())
	}
	r, err := d.Read()
	if err != nil {
		t.Errorf("Read: %v", err)
	}
	if !r.Valid.Has(FieldMemory) || r.MemoryTotalBytes < 1<<30 || r.MemoryUsedBytes > r.MemoryTotalBytes {
		t.Errorf("memory valid %v total %d used %d; want a plausible GPU memory", r.Valid.Has(FieldMemory), r.MemoryTotalBytes, r.MemoryUsedBytes)
	}
	if r.Valid.Has(FieldUtilization) && (r.GPUUtilization < 0 || r.GPUUtilization > 1) {
		t.Errorf("GPU utilisation %v; want 0..1", r.GPUUtilization)
	}
	if r.Valid.Has(FieldPower) && (r.PowerWatts <= 0 || r.PowerWatts > 2000) {
		t.Errorf("power %v W; want 0..2000", r.PowerWatts)
	}
	if r.Valid.Has(FieldSMClock) && r.SMClockHertz < 1e8 {
		t.Errorf("SM clock %v Hz; want ≥ 100 MHz", r.SMClockHertz)
	}
	e1, err := d.Energy()
	if err != nil {
		t.Fatalf("Energy: %v", err)
	}
	if e1 <= 0 {
		t.Errorf("Energy() = %v J; want > 0 on a running GPU", e1)
	}
	if e2, _ := d.Energy(); e2 < e1 {
		t.Errorf("energy counter went back from %v to %v J", e1, e2)
	}
	if err := d.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestOpenNoSuchDevice(t *testing.T) {
	d, err := Open(1 << 20)
	if err == nil {
		d.Close()
		t.Fatal("Open(1<<20) succeeded; want an error")
	}
	if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrNoDevice) {
		t.Errorf("Open(1<<20) error = %v; want ErrUnavailable or ErrNoDevice", err)
	}
}

func TestCUDAOrdinal(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want bool
	}{
		{"cuda:0", 0, true},
		{"cuda:3", 3, true},
		{" CUDA:1 ", 1, true},
		{"cpu", 0, false},
		{"auto", 0, false},
		{"cuda", 0, false},
		{"cuda:", 0, false},
		{"cuda:-1", 0, false},
		{"cuda:x", 0, false},
	} {
		n, ok := CUDAOrdinal(tc.in)
		if n != tc.n || ok != tc.want {
			t.Errorf("CUDAOrdinal(%q) = %d, %v; want %d, %v", tc.in, n, ok, tc.n, tc.want)
		}
	}
}

func TestCUDATarget(t *testing.T) {
	for _, tc := range []struct {
		ordinal int
		visible string
		set     bool
		want    target
		err     bool
	}{
		{0, "", false, target{index: 0}, false},
		{2, "", false, target{index: 2}, false},
		{0, "3", true, target{index: 3}, false},
		{1, "3,1", true, target{index: 1}, false},
		{0, "1,3", true, target{index: 1}, false},
		{1, " 2 , 5 ", true, target{index: 5}, false},
		{0, "GPU-5d3c", true, target{uuid: "GPU-5d3c"}, false},
		{1, "0,GPU-ab12", true, target{uuid: "GPU-ab12"}, false},
		{0, "", true, target{}, true},         // set but empty: no devices
		{1, "2", true, target{}, true},        // past the end
		{1, "2,x,3", true, target{}, true},    // CUDA stops at "x"
		{0, "-1", true, target{}, true},       // a common way to hide all GPUs
		{0, "MIG-1234", true, target{}, true}, // not a whole GPU
		{0, "GPU-", true, target{}, true},     // no UUID
	} {
		got, err := cudaTarget(tc.ordinal, tc.visible, tc.set)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("cudaTarget(%d, %q, %v) = %+v, %v; want %+v, error %v", tc.ordinal, tc.visible, tc.set, got, err, tc.want, tc.err)
		}
		if err != nil && !errors.Is(err, ErrNoDevice) {
			t.Errorf("cudaTarget(%d, %q) error %v; want ErrNoDevice", tc.ordinal, tc.visible, err)
		}
	}
}

func TestUUIDTarget(t *testing.T) {
	for _, tc := range []struct {
		uuid string
		want target
		err  string
	}{
		{"GPU-5d3c0102-abcd-000f-1020-deadbeef0001", target{uuid: "GPU-5d3c0102-abcd-000f-1020-deadbeef0001"}, ""},
		{"MIG-5d3c0102-abcd-000f-1020-deadbeef0001", target{}, "MIG instance"},
		{"GPU-", target{}, "not a GPU UUID"},
		{"5d3c0102", target{}, "not a GPU UUID"},
		{"", target{}, "not a GPU UUID"},
	} {
		got, err := uuidTarget(tc.uuid)
		if got != tc.want || (tc.err == "") != (err == nil) || err != nil && (!strings.Contains(err.Error(), tc.err) || !errors.Is(err, ErrNoDevice)) {
			t.Errorf("uuidTarget(%q) = %+v, %v; want %+v, an error saying %q", tc.uuid, got, err, tc.want, tc.err)
		}
	}
}

func TestFieldsHas(t *testing.T) {
	s := FieldMemory | FieldPower
	if !s.Has(FieldMemory) || !s.Has(FieldPower) || !s.Has(FieldMemory|FieldPower) {
		t.Errorf("%b: want memory and power", s)
	}
	if s.Has(FieldEnergy) || s.Has(FieldMemory|FieldEnergy) {
		t.Errorf("%b: want no energy", s)
	}
}

func TestTotalEnergy(t *testing.T) {
	a := fixedDevice(0, "GPU-a", "A", Reading{EnergyJoules: 1000.5}, nil)
	b := fixedDevice(1, "GPU-b", "B", Reading{EnergyJoules: 250.25}, nil)
	if got, err := TotalEnergy(a, b); got != 1250.75 || err != nil {
		t.Errorf("TotalEnergy = %v, %v; want 1250.75", got, err)
	}
	lost := fixedDevice(2, "GPU-c", "C", Reading{}, errors.New("ERROR_GPU_IS_LOST"))
	if _, err := TotalEnergy(a, lost); err == nil || !strings.Contains(err.Error(), "GPU 2 (GPU-c)") {
		t.Errorf("TotalEnergy with a lost GPU: %v; want an error naming it", err)
	}
}
