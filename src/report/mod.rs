//! Events and reporters.
