//! A fixed pool of worker threads for the forward pass.
