// Package layout holds only a test: the rule of the repository's layout
// that no package imports another process's package, checked on the import
// graph `go list` reports.
//
// A process package is a main (cmd/*, tools/*, bench/*) or a process's
// engine (fwd, writer, indexer); only the process's own main, cmd/NAME, may
// import its engine. Libraries (shmring, store/..., query, internal/...)
// may be imported by anyone. Code two processes share belongs in a library:
// a process that imports another's package cannot be built, tested or
// changed without it.
package layout
