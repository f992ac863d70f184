//! Variable byte integers ([MQTT-1.5.5]).

/// The largest remaining length MQTT can express ([MQTT-2.2.3]).
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;
