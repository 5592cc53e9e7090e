//go:build cgo

package cuda

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestTileNVFP4 checks the tiled layout against the copies the NVFP4
// kernel's lanes made row-major: in unit (tile T, chunk c), lane 4g + q's
// copy h (16 bytes at h·512 + 16·lane) is row 16T + 8h + g's code bytes
// 64c + 16q … + 15, and its four scale bytes at h·64 + 8g + 4⌊q/2⌋ are
// that row's scales 8c + 4⌊q/2⌋ … + 3. The copies cover every byte of both
// layouts once.
func TestTileNVFP4(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, s := range []struct{ n, k int }{{16, 128}, {48, 384}, {32, 4096}} {
		n, k := s.n, s.k
		if !fp4Tileable(n, k) {
			t.Fatalf("%d × %d not tileable", n, k)
		}
		data, scales := make([]byte, n*k/2), make([]byte, n*k/16)
		for i := range data {
			data[i] = byte(r.Uint32())
		}
		for i := range scales {
			scales[i] = byte(r.Uint32())
		}
		td, ts := tileNVFP4(data, scales, n, k)
		nc := k / 128
		for tile := range n / 16 {
			for c := range nc {
				u := tile*nc + c
				for h := range 2 {
					for lane := range 32 {
						g, q := lane/4, lane%4
						row := 16*tile + 8*h + g
						got := td[u*1024+h*512+lane*16:][:16]
						want := data[row*k/2+c*64+q*16:][:16]
						if !bytes.Equal(got, want) {
							t.Fatalf("%d × %d: unit (%d, %d) copy %d lane %d: codes %x, want row %d's %x", n, k, tile, c, h, lane, got, row, want)
						}
						gs := ts[u*128+h*64+g*8+4*(q/2):][:4]
						ws := scales[row*k/16+c*8+4*(q/2):][:4]
						if !bytes.Equal(gs, ws) {
							t.Fatalf("%d × %d: unit (%d, %d) copy %d lane %d: scales %x, want %x", n, k, tile, c, h, lane, gs, ws)
						}
					}
				}
			}
		}
	}
	for _, s := range []struct{ n, k int }{{40, 128}, {16, 100}, {32, 64}, {0, 128}} {
		if fp4Tileable(s.n, s.k) {
			t.Errorf("%d × %d: tileable, want row-major", s.n, s.k)
		}
	}
}
