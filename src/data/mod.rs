//! Data sets: the embedded digits, seeded synthetic sets, CSV and IDX loaders.
