package registryapi

import "context"

// nsKey is the context key of the request's upstream namespace.
type nsKey struct{}

// Namespace returns the upstream registry a request names with the `ns`
// query parameter (containerd sends it when the agent is a mirror:
// `?ns=docker.io`), or "" when it names none. Backends read it from the
// request context they are called with.
func Namespace(ctx context.Context) string {
	ns, _ := ctx.Value(nsKey{}).(string)
	return ns
}

// WithNamespace returns ctx carrying ns, as the handler does for `?ns=`.
func WithNamespace(ctx context.Context, ns string) context.Context {
	return context.WithValue(ctx, nsKey{}, ns)
}
