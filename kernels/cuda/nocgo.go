//go:build !cgo

package cuda

import (
	"fmt"

	"github.com/gearbox-inference/gearbox/kernels"
)

func init() {
	kernels.Register("cuda", func(spec string) (kernels.Backend, error) {
		return nil, fmt.Errorf("%w: this binary was built without cgo (CGO_ENABLED=0)", ErrUnavailable)
	})
}
