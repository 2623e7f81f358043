//go:build !unix

package broker

// lockStore does nothing where flock is not available.
func lockStore(string) (func(), error) { return func() {}, nil }
