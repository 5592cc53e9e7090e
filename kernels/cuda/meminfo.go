//go:build cgo

package cuda

import (
	"context"

	"github.com/gearbox-inference/gearbox/kernels"
)

var _ kernels.DeviceMemory = (*Backend)(nil)

// MemoryInfo returns the device's free and total memory (cuMemGetInfo),
// after the work queued on the backend's stream is done.
func (b *Backend) MemoryInfo(ctx context.Context) (free, total int64, err error) {
	err = b.do(ctx, func(d *devState) error {
		if err := d.stream.sync(); err != nil {
			return err
		}
		f, t, err := cuMemInfo()
		free, total = int64(f), int64(t)
		return err
	})
	return free, total, err
}
