// Package deployments holds no product code. Its tests check the files in
// this folder so that they cannot drift from the worker or from the APIs they
// target:
//
//   - the Helm chart helm/gearbox renders, through Helm's own SDK, with its
//     default values, with every toggle on and CPU-only, and refuses bad
//     values with a message naming the value;
//   - every rendered object, and every manifest in kubernetes/, decodes
//     strictly (unknown or duplicate fields are errors) into the Kubernetes,
//     KEDA and prometheus-operator Go types, and the worker pods pass the
//     "restricted" Pod Security Standard as the Kubernetes admission library
//     evaluates it;
//   - prometheus/gearbox-rules.yaml parses with Prometheus's rule parser,
//     each alert fires on sample series that should fire it and stays quiet
//     on series that should not, and the chart's PrometheusRule holds the
//     same rules;
//   - grafana/gearbox.json decodes strictly with Grafana's Go types and every
//     query parses as PromQL;
//   - every metric and label the rules and the dashboard name is one the
//     worker registers (or one the NATS exporter exports);
//   - the NATS server release agrees in go.mod, compose.yaml and the NATS
//     chart's values, and the NATS chart's version is pinned wherever it is
//     installed.
//
// It is a module of its own so that the product's go.mod does not carry
// Helm, Kubernetes and Prometheus.
package deployments
