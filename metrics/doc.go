// Package metrics is Tako's Prometheus metrics.
package metrics
