//! Signal names, numbers and default actions, as Node and Linux know them.

/// A POSIX signal, by its Linux number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signal(u8);

/// What a signal does to a wasm guest that has no handler for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultAction {
    /// End the process (SIGTERM, SIGINT, ...).
    Terminate,
    /// Nothing happens (SIGCHLD, SIGWINCH, SIGURG) — and the stop/continue
    /// signals, which wasm guests do not support.
    Ignore,
}

const SIGNALS: &[(&str, u8, DefaultAction)] = {
    use DefaultAction::{Ignore as I, Terminate as T};
    &[
        ("SIGHUP", 1, T),
        ("SIGINT", 2, T),
        ("SIGQUIT", 3, T),
        ("SIGILL", 4, T),
        ("SIGTRAP", 5, T),
        ("SIGABRT", 6, T),
        ("SIGIOT", 6, T),
        ("SIGBUS", 7, T),
        ("SIGFPE", 8, T),
        ("SIGKILL", 9, T),
        ("SIGUSR1", 10, T),
        ("SIGSEGV", 11, T),
        ("SIGUSR2", 12, T),
        ("SIGPIPE", 13, T),
        ("SIGALRM", 14, T),
        ("SIGTERM", 15, T),
        ("SIGSTKFLT", 16, T),
        ("SIGCHLD", 17, I),
        ("SIGCONT", 18, I),
        ("SIGSTOP", 19, I),
        ("SIGTSTP", 20, I),
        ("SIGTTIN", 21, I),
        ("SIGTTOU", 22, I),
        ("SIGURG", 23, I),
        ("SIGXCPU", 24, T),
        ("SIGXFSZ", 25, T),
        ("SIGVTALRM", 26, T),
        ("SIGPROF", 27, T),
        ("SIGWINCH", 28, I),
        ("SIGIO", 29, T),
        ("SIGPOLL", 29, T),
        ("SIGPWR", 30, T),
        ("SIGSYS", 31, T),
    ]
};

/// Names of the real-time signals 32..=64: their numbers.
const REALTIME: [&str; 33] = [
    "32", "33", "34", "35", "36", "37", "38", "39", "40", "41", "42", "43", "44", "45", "46", "47",
    "48", "49", "50", "51", "52", "53", "54", "55", "56", "57", "58", "59", "60", "61", "62", "63",
    "64",
];

impl Signal {
    /// SIGHUP (1).
    pub const HUP: Signal = Signal(1);
    /// SIGINT (2).
    pub const INT: Signal = Signal(2);
    /// SIGABRT (6): what a trapped guest reports.
    pub const ABRT: Signal = Signal(6);
    /// SIGKILL (9).
    pub const KILL: Signal = Signal(9);
    /// SIGTERM (15): the default of `kill`.
    pub const TERM: Signal = Signal(15);
    /// SIGSTOP (19).
    pub const STOP: Signal = Signal(19);
    /// SIGXCPU (24): a process past its CPU time limit (`RLIMIT_CPU` for an
    /// OS child, `max-cpu-ms` for a wasm one).
    pub const XCPU: Signal = Signal(24);

    /// Parses a signal as Node's `kill()` accepts it: a name such as
    /// `SIGTERM`, or a number. `0` is the existence probe.
    pub fn parse(text: &str) -> Option<Signal> {
        if let Ok(n) = text.parse::<u8>() {
            return (n == 0 || SIGNALS.iter().any(|s| s.1 == n)).then_some(Signal(n));
        }
        SIGNALS.iter().find(|s| s.0 == text).map(|s| Signal(s.1))
    }

    /// The signal's number (0 for the probe).
    pub fn number(self) -> u8 {
        self.0
    }

    /// The canonical name (`SIGTERM`), as Node reports `signalCode`.
    pub fn name(self) -> &'static str {
        match SIGNALS.iter().find(|s| s.1 == self.0) {
            Some(s) => s.0,
            // Real-time signals have no fixed name: their number, as text.
            None => REALTIME
                .get(usize::from(self.0).wrapping_sub(32))
                .copied()
                .unwrap_or("0"),
        }
    }

    /// The signal an OS process was killed by: a known one, or a real-time
    /// one (32..=64), by number.
    pub fn from_number(n: i32) -> Option<Signal> {
        let n = u8::try_from(n).ok()?;
        (SIGNALS.iter().any(|s| s.1 == n) || (32..=64).contains(&n)).then_some(Signal(n))
    }

    /// What the signal does without a handler.
    pub fn default_action(self) -> DefaultAction {
        SIGNALS
            .iter()
            .find(|s| s.1 == self.0)
            .map_or(DefaultAction::Ignore, |s| s.2)
    }

    /// Whether a process may install a handler (everything but SIGKILL,
    /// SIGSTOP and the probe).
    pub fn catchable(self) -> bool {
        self != Signal::KILL && self != Signal::STOP && self.0 != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_and_numbers() {
        assert_eq!(Signal::parse("SIGTERM"), Some(Signal::TERM));
        assert_eq!(Signal::parse("9"), Some(Signal::KILL));
        assert_eq!(Signal::parse("SIGIOT").map(Signal::name), Some("SIGABRT"));
        assert_eq!(Signal::parse("0").map(Signal::number), Some(0));
        assert_eq!(Signal::parse("SIGFOO"), None);
        assert_eq!(Signal::parse("TERM"), None);
        assert_eq!(Signal::parse("99"), None);
    }

    #[test]
    fn realtime_signals_by_number() {
        assert_eq!(Signal::from_number(34).map(Signal::name), Some("34"));
        assert_eq!(Signal::from_number(64).map(Signal::name), Some("64"));
        assert_eq!(Signal::from_number(15), Some(Signal::TERM));
        assert_eq!(Signal::from_number(65), None);
        assert_eq!(Signal::from_number(0), None);
    }

    #[test]
    fn handlers_and_defaults() {
        assert!(!Signal::KILL.catchable());
        assert!(Signal::TERM.catchable());
        assert_eq!(Signal::TERM.default_action(), DefaultAction::Terminate);
        assert_eq!(
            Signal::parse("SIGCHLD").unwrap().default_action(),
            DefaultAction::Ignore
        );
    }
}
