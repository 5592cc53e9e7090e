package worker

import "sync"

// versions counts the users of model versions, so that a version that has
// been replaced is evicted from the backends once its last user is done,
// and not before. M is a model pointer (*model.Model; *lm.Model for
// language models): a new version of a model is a new pointer, and
// backends key what they cache for it on that pointer.
//
// A user is a job, from admission until it ends, or a quality check, from
// the batch it samples until it has run. Eviction is correct under
// concurrency because of three rules, which the owner of the versions
// (Models) keeps:
//
//   - A version is taken (add) only while it is current — under the lock
//     that guards the current versions, which a swap holds exclusively —
//     or by a user that already holds it (a batch lending its version to a
//     check). So once a replaced version's count is zero, nothing can take
//     it again, and nothing will run it again.
//   - The swap retires the replaced version: retire reports that it is to
//     be evicted at once when nobody holds it; otherwise release reports
//     it when its last user lets go. Each retired version is reported
//     once.
//   - Eviction runs after the report, outside every lock (the CUDA backend
//     waits for its device queue).
//
// A version put back after it was retired (Put of the same pointer) is
// current again: unretire forgets the retirement. If its eviction was
// already reported it may still run; that costs a conversion, not a leak,
// since the version is current.
type versions[M comparable] struct {
	mu      sync.Mutex
	users   map[M]int      // users of each version in use; absent: none
	retired map[M]struct{} // replaced versions that still have users
}

func newVersions[M comparable]() *versions[M] {
	return &versions[M]{users: map[M]int{}, retired: map[M]struct{}{}}
}

// add counts one more user of m.
func (v *versions[M]) add(m M) {
	v.mu.Lock()
	v.users[m]++
	v.mu.Unlock()
}

// release counts one user of m less and reports whether m is now to be
// evicted: it was retired and this was its last user. Releasing a version
// nobody holds does nothing.
func (v *versions[M]) release(m M) (evict bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	n, ok := v.users[m]
	if !ok {
		return false
	}
	if n > 1 {
		v.users[m] = n - 1
		return false
	}
	delete(v.users, m)
	if _, ok := v.retired[m]; ok {
		delete(v.retired, m)
		return true
	}
	return false
}

// retire marks m replaced and reports whether it is to be evicted now,
// having no users; otherwise its last release will report it.
func (v *versions[M]) retire(m M) (evict bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.users[m] == 0 {
		return true
	}
	v.retired[m] = struct{}{}
	return false
}

// unretire makes m current again.
func (v *versions[M]) unretire(m M) {
	v.mu.Lock()
	delete(v.retired, m)
	v.mu.Unlock()
}

// inUse returns how many versions have users, and how many of those are
// retired.
func (v *versions[M]) inUse() (versions, retired int) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.users), len(v.retired)
}
