//go:build cgo

package cuda

/*
#include "src/abi.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"maps"

	"github.com/rs/zerolog"

	"github.com/gearbox-inference/gearbox/model"
)

// workspaceBytes is cuBLASLt's workspace, allocated once per device.
const workspaceBytes = 32 << 20

// devState is everything the device goroutine owns. Its methods run only
// on that goroutine, with the primary context current.
type devState struct {
	dev    cuDevice
	ctx    cuContext
	stream cuStream
	lt     ltHandle
	comp   *compiler
	info   DeviceInfo
	k      *kernelSet // the kernels, modOps loaded

	workspace uint64
	amax      uint64 // 4 bytes: the per-tensor fp8 activation amax (float bits; bench)
	xscale    uint64 // 4 bytes: the per-tensor fp8 activation scale (bench)
	xvec      uint64 // the fp8 activation scales, one per row (xvecCap floats)
	xvecCap   int

	weights   map[weightKey]*devWeights
	slots     *slots // the tensor path's batches in flight (Backend's)
	plans     map[planKey]*gemmPlan
	planClock uint64 // counts plan lookups, for the plans' last use
	margin    int

	useGraphs   bool
	graphs      map[graphKey]*graph
	graphSeen   map[graphKey]int // eager passes per key; -1: capture failed, never again
	graphErr    error            // the last capture failure, for tests and messages
	benchMid    *cuEvent         // BenchLinear's mid-point event, or nil
	benchCand   int              // LinearBench.Cand for the run (linear's plans)
	fp4SmallM   int
	fp4WideM    int   // Config.FP4WideM
	fp4WideMinW int64 // Config.FP4WideMinWeights
	fp4RowMajor bool  // LMBench.FP4RowMajor: random fp4 weights row-major
	gemvMaxM    int   // Config.GEMVMaxRows
	invariant   bool  // Config.BatchInvariant: GEMM algorithms fixed per shape (linear.go)
	attnPartial bool  // every attention on gbx_attn_partial (LMBench.AttnPartial)
	attnDec     bool  // attention on gbx_attn_dec instead of gbx_attn_mma (LMBench.AttnDec)
	attnPrefill bool  // prefill chunks' attention on gbx_attn_prefill (not Config.NoPrefillAttention, LMBench.NoAttnPrefill)
	// attnPrefillForm is gbx_attn_prefill's form (attnArgs.pfForm): the
	// warpgroup (wgmma) one on compute capability 9.0 (sm_90a), mma.sync
	// elsewhere, unless LMBench.AttnPrefillWG says.
	attnPrefillForm int
	attnRing        int // gbx_attn_mma's _ring entry points: 0 where attnRingMinBlocks says, -1 never, 1 always (LMBench.AttnRing)

	lm  lmState        // language models (lmrun.go)
	log zerolog.Logger // the backend's, with the device named
}

// openDevice sets up device cfg.Device on the calling (locked) thread.
func openDevice(cfg Config) (d *devState, info DeviceInfo, err error) {
	d = &devState{
		weights:     map[weightKey]*devWeights{},
		plans:       map[planKey]*gemmPlan{},
		graphs:      map[graphKey]*graph{},
		graphSeen:   map[graphKey]int{},
		useGraphs:   !cfg.NoGraphs && haveGraphs(),
		margin:      cfg.FP8Margin,
		fp4SmallM:   cfg.FP4SmallM,
		fp4WideM:    cfg.FP4WideM,
		fp4WideMinW: cfg.FP4WideMinWeights,
		gemvMaxM:    cfg.GEMVMaxRows,
		invariant:   cfg.BatchInvariant,
		lm:          newLMState(),
	}
	if d.dev, err = cuDeviceGet(cfg.Device); err != nil {
		return nil, info, fmt.Errorf("%w: %w", ErrNoDevice, err)
	}
	info.Ordinal = cfg.Device
	if info.Name, err = d.dev.name(); err != nil {
		return nil, info, err
	}
	if info.UUID, err = d.dev.uuid(); err != nil {
		return nil, info, err
	}
	if info.Major, err = d.dev.attr(C.GBX_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR); err != nil {
		return nil, info, err
	}
	if info.Minor, err = d.dev.attr(C.GBX_CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR); err != nil {
		return nil, info, err
	}
	if info.SMs, err = d.dev.attr(C.GBX_CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT); err != nil {
		return nil, info, err
	}
	if info.TotalMemory, err = d.dev.totalMem(); err != nil {
		return nil, info, err
	}
	if info.DriverVersion, err = cuDriverVersion(); err != nil {
		return nil, info, err
	}
	if d.ctx, err = d.dev.retainPrimary(); err != nil {
		return nil, info, err
	}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	if err = d.ctx.setCurrent(); err != nil {
		return nil, info, err
	}
	if d.stream, err = cuStreamCreate(); err != nil {
		return nil, info, err
	}
	if d.lt, err = ltCreate(); err != nil {
		return nil, info, err
	}
	info.CublasLt = ltVersion()
	if d.comp, err = newCompiler(info.Major, info.Minor, cfg.CacheDir); err != nil {
		return nil, info, err
	}
	info.NVRTCVersion, info.Arch = d.comp.version, d.comp.arch
	info.Libraries = maps.Clone(loadedFrom)
	d.k = newKernelSet(d.comp, info.SMs)
	d.k.pdl = !cfg.NoPDL && info.Major >= 9 && haveLaunchEx()
	info.PDL = d.k.pdl
	d.attnPrefill = !cfg.NoPrefillAttention && info.Major >= 8 // gbx_attn_prefill: mma.sync, ldmatrix, cp.async
	if info.Major == 9 && info.Minor == 0 {                    // wgmma: sm_90a
		d.attnPrefillForm = pfWG
	}
	info.PrefillAttention = d.attnPrefill
	d.info = info
	if err = d.k.load(modOps); err != nil {
		return nil, info, err
	}
	if d.workspace, err = cuMalloc(workspaceBytes); err != nil {
		return nil, info, err
	}
	if d.amax, err = cuMalloc(256); err != nil {
		return nil, info, err
	}
	if d.xscale, err = cuMalloc(256); err != nil {
		return nil, info, err
	}
	// The per-row fp8 scale vector, large enough that growing it (which
	// drops every CUDA graph) is rare.
	if err = d.growScaleVec(1 << 14); err != nil {
		return nil, info, err
	}
	ok = true
	return d, info, nil
}

// close frees everything; errors are ignored (the context goes with it).
func (d *devState) close() {
	if d.ctx.c == nil {
		return
	}
	_ = d.stream.sync()
	d.invalidateGraphs()
	for k := range d.weights {
		d.freeWeights(k)
	}
	d.closeSlots()
	d.lm.close(d)
	for k, p := range d.plans {
		p.free()
		delete(d.plans, k)
	}
	_ = cuFree(d.workspace)
	_ = cuFree(d.amax)
	_ = cuFree(d.xscale)
	_ = cuFree(d.xvec)
	if d.k != nil {
		d.k.close()
	}
	if d.lt.h != nil {
		d.lt.destroy()
	}
	if d.stream.s != nil {
		_ = d.stream.destroy()
	}
	_ = d.dev.releasePrimary()
	d.ctx = cuContext{}
}

// ---- activation buffers, one set a slot (slots.go) ----

// actBuf is the device and pinned host memory of one slot: two fp32
// activation buffers that layers alternate between, a buffer for a linear
// layer's converted input (tf32, bf16, fp16 or fp8), and pinned host
// buffers for the input and output.
type actBuf struct {
	rows, width int // capacity: rows × width values each
	a           [2]uint64
	conv        uint64
	hin, hout   pinned
}

// bucket rounds rows up to a power of two, at least 16, so a few buffers
// serve every batch size.
func bucket(rows int) int {
	b := 16
	for b < rows {
		b *= 2
	}
	return b
}

// oomHook, when set (tests), makes buffer allocation for a batch of rows
// rows fail with an out-of-memory error when it returns true.
var oomHook func(rows int) bool

// slotBuffers returns sl's buffers for rows rows of width at most width,
// allocating them (and sl's event) on first use or when width grew. sl is
// taken by the caller whose batch this is, and its last batch is done.
func (d *devState) slotBuffers(sl *slot, rows, width int) (*actBuf, error) {
	if oomHook != nil && oomHook(rows) {
		return nil, &Error{Op: "cuMemAlloc (test hook)", Code: cudaErrorOutOfMemory, Name: "CUDA_ERROR_OUT_OF_MEMORY", Msg: "out of memory"}
	}
	if a := sl.buf; a != nil && a.width >= width {
		return a, nil
	}
	d.freeSlot(sl)
	if !sl.event {
		e, err := cuEventCreate()
		if err != nil {
			return nil, err
		}
		sl.done, sl.event = e, true
	}
	bk := bucket(rows)
	a := &actBuf{rows: bk, width: width}
	n := uint64(bk) * uint64(width) * 4
	var err error
	for i := range a.a {
		if a.a[i], err = cuMalloc(n); err != nil {
			d.freeBuf(a)
			return nil, err
		}
	}
	if a.conv, err = cuMalloc(n); err == nil {
		if a.hin, err = cuMallocHost(int(n)); err == nil {
			a.hout, err = cuMallocHost(int(n))
		}
	}
	if err != nil {
		d.freeBuf(a)
		return nil, err
	}
	sl.buf = a
	return a, nil
}

// freeSlot destroys sl's graphs and frees its buffers (its event stays).
// sl must be the caller's or free, and the stream done with it.
func (d *devState) freeSlot(sl *slot) {
	if sl.buf == nil {
		return
	}
	d.dropSlotGraphs(sl)
	d.freeBuf(sl.buf)
	sl.buf = nil
}

func (d *devState) freeBuf(a *actBuf) {
	for _, p := range a.a {
		_ = cuFree(p)
	}
	_ = cuFree(a.conv)
	_ = a.hin.free()
	_ = a.hout.free()
}

// dropPools frees the buffers of every free slot (after running out of
// memory; slots in flight keep theirs).
func (d *devState) dropPools() {
	_ = d.stream.sync()
	if d.slots != nil {
		d.slots.each(d.freeSlot)
	}
}

// closeSlots frees every slot's buffers and events; slots.close has
// returned, so none is in flight.
func (d *devState) closeSlots() {
	if d.slots == nil {
		return
	}
	d.slots.each(func(sl *slot) {
		d.freeSlot(sl)
		if sl.event {
			_ = sl.done.destroy()
			sl.event = false
		}
		if sl.timed {
			_ = sl.start.destroy()
			sl.timed = false
		}
	})
}

// isOOM reports whether err is an out-of-memory error.
func isOOM(err error) bool { return errors.Is(err, ErrOutOfMemory) }

// maxWidth is the widest activation of m.
func maxWidth(m *model.Model) int {
	w := m.InputFeatures
	for _, l := range m.Layers {
		w = max(w, l.In, l.Out)
	}
	return w
}
