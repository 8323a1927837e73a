//! PNG plots of training runs.
