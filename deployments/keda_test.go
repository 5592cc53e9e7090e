package deployments

import (
	"fmt"
	"sort"
	"strconv"
	"testing"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
)

// natsJetStreamMetadata are the trigger metadata keys KEDA's nats-jetstream
// scaler reads (KEDA v2.21, pkg/scalers/nats_jetstream_scaler.go, the keda:
// tags of natsJetStreamMetadata), with how each value is parsed. The scaler
// package itself brings every cloud SDK KEDA supports, so the list is kept
// here by hand; a key KEDA does not know is silently ignored there.
var natsJetStreamMetadata = map[string]string{
	"natsServerMonitoringEndpoint": "string",
	"account":                      "string",
	"accountID":                    "string",
	"stream":                       "string",
	"consumer":                     "string",
	"lagThreshold":                 "int",
	"activationLagThreshold":       "int",
	"useHttps":                     "bool",
}

// checkScaledObject runs the checks KEDA's admission webhook makes without a
// cluster (replica bounds, fallback, triggers) and checks the nats-jetstream
// triggers' metadata keys and values.
func checkScaledObject(so *kedav1alpha1.ScaledObject) []string {
	var errs []string
	for _, check := range []func(*kedav1alpha1.ScaledObject) error{
		kedav1alpha1.CheckReplicaCountBoundsAreValid,
		kedav1alpha1.CheckFallbackValid,
		func(so *kedav1alpha1.ScaledObject) error { return kedav1alpha1.ValidateTriggers(so.Spec.Triggers) },
	} {
		if err := check(so); err != nil {
			errs = append(errs, err.Error())
		}
	}
	for _, tr := range so.Spec.Triggers {
		if tr.Type != "nats-jetstream" {
			errs = append(errs, fmt.Sprintf("trigger type %s; want nats-jetstream", tr.Type))
			continue
		}
		for _, k := range []string{"natsServerMonitoringEndpoint", "stream", "consumer", "lagThreshold"} {
			if tr.Metadata[k] == "" {
				errs = append(errs, fmt.Sprintf("trigger metadata: no %s", k))
			}
		}
		keys := make([]string, 0, len(tr.Metadata))
		for k := range tr.Metadata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := tr.Metadata[k]
			var err error
			switch natsJetStreamMetadata[k] {
			case "":
				err = fmt.Errorf("the nats-jetstream scaler has no such key")
			case "int":
				_, err = strconv.ParseInt(v, 10, 64)
			case "bool":
				_, err = strconv.ParseBool(v)
			}
			if err != nil {
				errs = append(errs, fmt.Sprintf("trigger metadata %s=%q: %v", k, v, err))
			}
		}
	}
	return errs
}

func TestCheckScaledObject(t *testing.T) {
	good := func() *kedav1alpha1.ScaledObject {
		lo, hi := int32(1), int32(4)
		return &kedav1alpha1.ScaledObject{Spec: kedav1alpha1.ScaledObjectSpec{
			MinReplicaCount: &lo, MaxReplicaCount: &hi,
			Triggers: []kedav1alpha1.ScaleTriggers{{Type: "nats-jetstream", Metadata: map[string]string{
				"natsServerMonitoringEndpoint": "nats:8222", "stream": "S", "consumer": "c", "lagThreshold": "10", "useHttps": "false",
			}}},
		}}
	}
	for _, tc := range []struct {
		name  string
		edit  func(*kedav1alpha1.ScaledObject)
		valid bool
	}{
		{"valid", func(*kedav1alpha1.ScaledObject) {}, true},
		{"misspelt key", func(so *kedav1alpha1.ScaledObject) { so.Spec.Triggers[0].Metadata["lagthreshold"] = "5" }, false},
		{"not a number", func(so *kedav1alpha1.ScaledObject) { so.Spec.Triggers[0].Metadata["lagThreshold"] = "lots" }, false},
		{"no stream", func(so *kedav1alpha1.ScaledObject) { delete(so.Spec.Triggers[0].Metadata, "stream") }, false},
		{"min above max", func(so *kedav1alpha1.ScaledObject) { n := int32(9); so.Spec.MinReplicaCount = &n }, false},
	} {
		so := good()
		tc.edit(so)
		if errs := checkScaledObject(so); (len(errs) == 0) != tc.valid {
			t.Errorf("%s: findings %q; want valid %v", tc.name, errs, tc.valid)
		}
	}
}
