package deployments

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	kedav1alpha1 "github.com/kedacore/keda/v2/apis/keda/v1alpha1"
	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// scheme knows every kind the deployment files may contain; decoding any
// other kind is an error.
var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{
		corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme,
		kedav1alpha1.AddToScheme, monitoringv1.AddToScheme,
	} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// strict decodes YAML as the API server does with strict field validation:
// an unknown field, a duplicate field or a wrong type is an error.
var strict = json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme, scheme,
	json.SerializerOptions{Yaml: true, Strict: true})

// decodeAll decodes every document of a multi-document YAML stream into its
// Go type. Documents holding only comments are skipped. name is used in errors.
func decodeAll(name string, data []byte) ([]runtime.Object, error) {
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var objs []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		if strings.TrimSpace(string(j)) == "null" {
			continue
		}
		obj, _, err := strict.Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: document %d: %w", name, i, err)
		}
		objs = append(objs, obj)
	}
}

// kinds lists the objects' kinds and names, as "Kind/name".
func kinds(objs []runtime.Object) []string {
	var ks []string
	for _, o := range objs {
		m, err := meta(o)
		if err != nil {
			ks = append(ks, fmt.Sprintf("%T", o))
			continue
		}
		ks = append(ks, o.GetObjectKind().GroupVersionKind().Kind+"/"+m)
	}
	return ks
}

// meta returns an object's name.
func meta(o runtime.Object) (string, error) {
	a, ok := o.(interface{ GetName() string })
	if !ok {
		return "", fmt.Errorf("%T has no metadata", o)
	}
	return a.GetName(), nil
}

// find returns the objects of type T.
func find[T runtime.Object](objs []runtime.Object) []T {
	var out []T
	for _, o := range objs {
		if t, ok := o.(T); ok {
			out = append(out, t)
		}
	}
	return out
}
