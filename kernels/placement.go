package kernels

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Placement is where the workers of one process run: one backend per
// device, shared by the workers on that device.
type Placement struct {
	// Backends holds one backend per device, in the order of the first
	// worker on each. A device no worker runs on is not opened.
	Backends []Backend
	// Workers holds worker i's backend, one of Backends.
	Workers []Backend
	// Fallback is, as Open's, why "auto" runs on the CPU: nil when CUDA
	// device 0 opened, and always nil for other specs.
	Fallback error
}

// Close closes every backend of p.
func (p *Placement) Close() error {
	var errs []error
	for _, b := range p.Backends {
		errs = append(errs, b.Close())
	}
	return errors.Join(errs...)
}

// Names joins the backends' names with commas: "cuda:0,cuda:1".
func Names(bs ...Backend) string {
	names := make([]string, len(bs))
	for i, b := range bs {
		names[i] = b.Name()
	}
	return strings.Join(names, ",")
}

// OpenWorkers opens the devices that Place puts workers workers on, for
// spec (case and surrounding spaces ignored), with the number of CUDA
// devices that Count("cuda") reports. Each device is opened once, in
// worker order; when one fails the ones opened are closed and the error
// names the device. "auto" (or "") first opens cuda:0: when that fails,
// every worker runs on the CPU and Fallback says why, as with Open; when it
// opens, "auto" is "cuda", and a later GPU that fails to open is an error.
func OpenWorkers(spec string, workers int) (*Placement, error) {
	return backends.openWorkers(spec, workers)
}

func (r *registry) openWorkers(spec string, workers int) (*Placement, error) {
	spec = strings.ToLower(strings.TrimSpace(spec))
	if workers < 1 {
		return nil, fmt.Errorf("kernels: %d workers: want at least 1", workers)
	}
	p := &Placement{Workers: make([]Backend, workers)}
	opened := map[string]Backend{}
	visible := 0
	switch spec {
	case "", "auto":
		b, err := r.openExact("cuda:0")
		if err != nil {
			p.Fallback = err
			break
		}
		opened["cuda:0"] = b
		p.Backends = append(p.Backends, b)
		if visible, err = r.count("cuda"); err != nil || visible < 1 {
			visible = 1 // cuda:0 opened: at least it is there
		}
	case "cuda":
		var err error
		if visible, err = r.count("cuda"); err != nil {
			return nil, fmt.Errorf("kernels: counting CUDA devices: %w", err)
		}
	}
	specs, err := Place(spec, workers, visible)
	if err != nil {
		p.Close()
		return nil, err
	}
	for i, s := range specs {
		b, ok := opened[s]
		if !ok {
			if b, err = r.openExact(s); err != nil {
				p.Close()
				if s != spec {
					return nil, fmt.Errorf("%s (for worker %d): %w", s, i, err)
				}
				return nil, err
			}
			opened[s] = b
			p.Backends = append(p.Backends, b)
		}
		p.Workers[i] = b
	}
	return p, nil
}

// Place returns the device spec each of workers workers runs on, for the
// device spec spec (GEARBOX_DEVICE, lower case, trimmed) on a host where
// visible CUDA devices are visible to the process:
//
//   - "cuda": worker i on cuda:(i mod visible), every visible GPU in turn
//     (an error when visible is 0);
//   - "auto" or "": as "cuda" when visible > 0, else every worker on "cpu";
//   - a list "cuda:0,cuda:2": worker i on the list's entry i mod its
//     length; each entry is cuda:N, named once;
//   - anything else ("cpu", "cuda:N"): every worker on that one device.
//
// Place checks the form of a list's entries, not that the devices exist:
// opening them does.
func Place(spec string, workers, visible int) ([]string, error) {
	if workers < 1 {
		return nil, fmt.Errorf("kernels: %d workers: want at least 1", workers)
	}
	var devs []string
	switch {
	case spec == "cuda" || (spec == "" || spec == "auto") && visible > 0:
		if visible < 1 {
			return nil, fmt.Errorf("kernels: device %q: no CUDA device is visible", spec)
		}
		for i := range visible {
			devs = append(devs, "cuda:"+strconv.Itoa(i))
		}
	case spec == "" || spec == "auto":
		devs = []string{"cpu"}
	case strings.Contains(spec, ","):
		seen := map[int]bool{}
		for e := range strings.SplitSeq(spec, ",") {
			e = strings.TrimSpace(e)
			n, err := strconv.Atoi(strings.TrimPrefix(e, "cuda:"))
			if !strings.HasPrefix(e, "cuda:") || err != nil || n < 0 {
				return nil, fmt.Errorf("kernels: device list %q: entry %q is not cuda:N", spec, e)
			}
			if seen[n] {
				return nil, fmt.Errorf("kernels: device list %q names cuda:%d twice", spec, n)
			}
			seen[n] = true
			devs = append(devs, "cuda:"+strconv.Itoa(n))
		}
	default:
		devs = []string{spec}
	}
	out := make([]string, workers)
	for i := range out {
		out[i] = devs[i%len(devs)]
	}
	return out, nil
}
