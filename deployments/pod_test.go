package deployments

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	psa "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// restricted evaluates pods against the "restricted" Pod Security Standard
// at the newest version, with the checks the Kubernetes admission plugin runs.
var restricted = func() policy.Evaluator {
	e, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		panic(err)
	}
	return e
}()

// checkPod returns what keeps a pod from running as the workers must: the
// restricted standard's findings, a writable root filesystem, and a missing
// emptyDir where the worker writes (its caches and /tmp).
func checkPod(m *metav1.ObjectMeta, spec *corev1.PodSpec) []string {
	var errs []string
	lv := psa.LevelVersion{Level: psa.LevelRestricted, Version: psa.LatestVersion()}
	for _, r := range restricted.EvaluatePod(lv, m, spec) {
		if !r.Allowed {
			errs = append(errs, fmt.Sprintf("restricted: %s: %s", r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	empty := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil {
			empty[v.Name] = true
		}
	}
	for _, c := range spec.Containers {
		if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
			errs = append(errs, fmt.Sprintf("container %s: readOnlyRootFilesystem is not true", c.Name))
		}
		for _, dir := range []string{"/tmp", "/var/cache/gearbox"} {
			if !mountedFrom(c, dir, empty) {
				errs = append(errs, fmt.Sprintf("container %s: %s is not an emptyDir mount", c.Name, dir))
			}
		}
	}
	return errs
}

// mountedFrom reports whether dir is the mount path of one of vols in c.
func mountedFrom(c corev1.Container, dir string, vols map[string]bool) bool {
	for _, vm := range c.VolumeMounts {
		if path.Clean(vm.MountPath) == dir && vols[vm.Name] {
			return true
		}
	}
	return false
}

// checkProbes returns what is wrong with a worker container's probes:
// liveness and startup on /healthz, readiness on /readyz, all on the metrics
// port.
func checkProbes(c corev1.Container) []string {
	var errs []string
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"startupProbe", c.StartupProbe, "/healthz"},
		{"livenessProbe", c.LivenessProbe, "/healthz"},
		{"readinessProbe", c.ReadinessProbe, "/readyz"},
	} {
		switch {
		case p.probe == nil || p.probe.HTTPGet == nil:
			errs = append(errs, fmt.Sprintf("container %s: no HTTP %s", c.Name, p.name))
		case p.probe.HTTPGet.Path != p.path:
			errs = append(errs, fmt.Sprintf("container %s: %s path = %s; want %s", c.Name, p.name, p.probe.HTTPGet.Path, p.path))
		case p.probe.HTTPGet.Port.String() != "metrics":
			errs = append(errs, fmt.Sprintf("container %s: %s port = %s; want metrics", c.Name, p.name, p.probe.HTTPGet.Port.String()))
		}
	}
	for _, port := range c.Ports {
		if port.Name == "metrics" && port.ContainerPort != 9464 {
			errs = append(errs, fmt.Sprintf("container %s: metrics port = %d; want 9464", c.Name, port.ContainerPort))
		}
	}
	return errs
}

// joinErrs formats findings one per line.
func joinErrs(errs []string) string { return "\n\t" + strings.Join(errs, "\n\t") }
