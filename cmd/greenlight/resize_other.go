//go:build !unix

package main

// onResize does nothing where the system does not signal window changes.
func onResize(func()) (stop func()) { return func() {} }
