//! Helpers shared by the end-to-end tests (namespaces, daemons, kernel peers).
