//! berth-testutils
