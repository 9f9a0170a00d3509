//! Where workers run: on this machine (the default), or wherever a command
//! prefix such as `ssh HOST` or `srun` starts them, with the protocol on
//! the started program's stdin and stdout.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::Duration;

/// Where a pool's workers run, and how they are started there.
///
/// * [`Launcher::local`] (the default): the program is re-executed on this
///   machine, over a socketpair.
/// * [`Launcher::ssh`], [`Launcher::srun`], [`Launcher::command`]: a command
///   prefix starts the worker program elsewhere and forwards its stdin and
///   stdout, which carry the protocol. Anything that does that works:
///   `docker exec -i CONTAINER`, `kubectl exec -i POD --`, `nice -n 10`.
///
/// Everything a task does — its arguments, result, cancellation, timeouts,
/// retries, channels, logs — goes over that one stream, so it behaves the
/// same through every launcher. What cannot cross hosts is refused with a
/// typed error: [`Containment::Cgroup`](crate::Containment::Cgroup) (a
/// remote worker's tasks are contained by its process group, and end when
/// the stream does).
///
/// A remote worker is the same program, at the same path unless
/// [`program`](Launcher::program) says otherwise, and must be the same
/// build: its handshake carries a fingerprint of its task list, and a
/// mismatch fails [`build`](crate::PoolBuilder::build) with an error naming
/// the launcher. What a remote task prints to stdout or stderr comes back
/// on the launcher's stderr (the worker moves the protocol off fd 1, so a
/// `println!` cannot corrupt a frame).
///
/// The pool signals only processes it started itself, here: the launcher.
/// Killing it (a cancel, a timeout, `shutdown_now`, the pool's own death)
/// closes the stream, and the remote worker ends itself and everything its
/// task started when it sees the end of its stdin, even mid-task (sshd
/// sends no signal when its client goes).
///
/// # Examples
///
/// ```no_run
/// use procpool::{Launcher, Pool};
///
/// # async fn demo() -> Result<(), procpool::Error> {
/// // Four workers on node7, reached with the user's ssh keys.
/// let pool = Pool::builder()
///     .launcher(Launcher::ssh("node7").ssh_args(["-p", "2222"]))
///     .workers(4)
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Launcher {
    how: How,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum How {
    #[default]
    Local,
    Command(Prefix),
}

/// A command that starts the worker program elsewhere.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    /// The command and its options, up to (not including) `target`.
    pub(crate) words: Vec<OsString>,
    /// Comes last, after `words` and `--` (ssh's destination).
    pub(crate) target: Option<OsString>,
    /// The prefix hands what follows to a shell on the other side, as one
    /// string (ssh does): the worker's command line is quoted for it.
    pub(crate) shell: bool,
    /// The worker program on the other side; `None`: the local one's path.
    pub(crate) program: Option<PathBuf>,
    /// How long the stream may stay silent before the pool asks the worker
    /// for a sign of life, and as long again for the answer.
    pub(crate) keepalive: Option<Duration>,
}

/// How long a remote worker's stream may be silent before it is asked for
/// a sign of life (and then as long again before it is given up).
const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(15);

impl Launcher {
    /// Workers on this machine: the program re-executed over a socketpair.
    /// This is the default.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .launcher(procpool::Launcher::local())
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn local() -> Launcher {
        Launcher { how: How::Local }
    }

    /// Workers on `host`, started with OpenSSH:
    /// `ssh -T -o BatchMode=yes [ssh_args] -- HOST env PROCPOOL_WORKER=… PROGRAM ARGS…`,
    /// the command quoted for the remote shell.
    ///
    /// `BatchMode=yes` makes a missing key an error rather than a password
    /// prompt nobody answers. Set up keys (or an agent) and `known_hosts` for
    /// `host` beforehand, and put the same build of the program at the same
    /// path there (or see [`program`](Launcher::program)). The remote
    /// command runs in the login's home directory.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let pool = procpool::Pool::builder()
    ///     .launcher(procpool::Launcher::ssh("worker@node7"))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn ssh(host: impl Into<OsString>) -> Launcher {
        Launcher {
            how: How::Command(Prefix {
                words: ["ssh", "-T", "-o", "BatchMode=yes"]
                    .map(OsString::from)
                    .into(),
                target: Some(host.into()),
                shell: true,
                program: None,
                keepalive: Some(DEFAULT_KEEPALIVE),
            }),
        }
    }

    /// Workers placed by Slurm, inside an allocation (`salloc`, `sbatch`):
    /// `srun --quiet -u -N1 -n1 env PROCPOOL_WORKER=… PROGRAM ARGS…`, one job
    /// step per worker.
    ///
    /// `-u` is required: without it slurmstepd holds a task's output until a
    /// newline or 4 KiB, and frames stall. srun passes this process's
    /// environment and working directory on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // In a batch script run with `sbatch -N4 -n32`: one worker per task slot.
    /// let pool = procpool::Pool::builder()
    ///     .launcher(procpool::Launcher::srun())
    ///     .workers(32)
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn srun() -> Launcher {
        Launcher::command(["srun", "--quiet", "-u", "-N1", "-n1"])
    }

    /// Workers started by any command prefix that runs a program and
    /// forwards its stdin and stdout: the worker's command line (`env
    /// PROCPOOL_WORKER=… PROGRAM ARGS…`) is appended to `prefix` as separate
    /// arguments. For a prefix that passes them to a shell as one string, as
    /// ssh does, add [`quote_for_shell`](Launcher::quote_for_shell).
    ///
    /// # Panics
    ///
    /// If `prefix` is empty.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // Workers inside a running container that holds the same binary.
    /// let pool = procpool::Pool::builder()
    ///     .launcher(procpool::Launcher::command(["docker", "exec", "-i", "app"]))
    ///     .build()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn command<I, S>(prefix: I) -> Launcher
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let words: Vec<OsString> = prefix.into_iter().map(Into::into).collect();
        assert!(!words.is_empty(), "Launcher::command needs a command");
        Launcher {
            how: How::Command(Prefix {
                words,
                target: None,
                shell: false,
                program: None,
                keepalive: Some(DEFAULT_KEEPALIVE),
            }),
        }
    }

    /// The prefix passes the worker's command line to a shell as one string
    /// (as `ssh` does), so each word is quoted for a POSIX shell. Without it
    /// a path or argument with a space would be split there. A no-op for
    /// [`Launcher::local`]; already set for [`Launcher::ssh`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// // An ssh command line as a site's scripts spell it.
    /// let launcher = procpool::Launcher::command(["ssh", "-p", "2222", "node7"]).quote_for_shell();
    /// let pool = procpool::Pool::builder().launcher(launcher).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn quote_for_shell(mut self) -> Launcher {
        if let How::Command(prefix) = &mut self.how {
            prefix.shell = true;
        }
        self
    }

    /// More ssh options, placed before the host: `["-p", "2222"]`,
    /// `["-i", "/path/to/key"]`, `["-o", "ConnectTimeout=5"]`. Calls add
    /// up. For a prefix without a host ([`Launcher::command`],
    /// [`Launcher::srun`]), they are appended to the prefix; a no-op for
    /// [`Launcher::local`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let launcher = procpool::Launcher::ssh("node7")
    ///     .ssh_args(["-i", "/etc/app/worker_key", "-o", "ConnectTimeout=5"]);
    /// let pool = procpool::Pool::builder().launcher(launcher).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn ssh_args<I, S>(mut self, args: I) -> Launcher
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        if let How::Command(prefix) = &mut self.how {
            prefix.words.extend(args.into_iter().map(Into::into));
        }
        self
    }

    /// The worker program's path on the other side. The default is the
    /// local worker program's path: [`worker_program`] if set, else this
    /// executable's (as [`std::env::current_exe`] gives it). A no-op for
    /// [`Launcher::local`], which uses [`worker_program`].
    ///
    /// [`worker_program`]: crate::PoolBuilder::worker_program
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let launcher = procpool::Launcher::ssh("node7").program("/opt/app/bin/app");
    /// let pool = procpool::Pool::builder().launcher(launcher).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn program(mut self, path: impl Into<PathBuf>) -> Launcher {
        if let How::Command(prefix) = &mut self.how {
            prefix.program = Some(path.into());
        }
        self
    }

    /// How long a remote worker's stream may be silent before the pool asks
    /// it for a sign of life; if none comes within as long again, the link
    /// counts as hung: the launcher is killed, the worker's tasks fail with
    /// an [`Error::is_protocol`](crate::Error::is_protocol) error that says
    /// so, and it is replaced. The worker checks the other way: hearing
    /// nothing from the pool for three intervals (a launcher killed in a way
    /// that leaves the remote side running, as a SIGKILLed `srun` does), it
    /// ends itself and its task. `None` turns both checks off. A no-op for
    /// [`Launcher::local`], whose workers the pool watches directly.
    ///
    /// The default is 15 seconds (a hung link is found within 30, an
    /// orphaned remote worker ends within 45).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// # async fn demo() -> Result<(), procpool::Error> {
    /// let launcher = procpool::Launcher::ssh("node7").keepalive(Some(Duration::from_secs(5)));
    /// let pool = procpool::Pool::builder().launcher(launcher).build().await?;
    /// # Ok(()) }
    /// ```
    pub fn keepalive(mut self, interval: Option<Duration>) -> Launcher {
        if let How::Command(prefix) = &mut self.how {
            prefix.keepalive = interval;
        }
        self
    }

    /// Whether workers run on this machine, re-executed directly.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(procpool::Launcher::local().is_local());
    /// assert!(!procpool::Launcher::srun().is_local());
    /// ```
    pub fn is_local(&self) -> bool {
        matches!(self.how, How::Local)
    }

    /// The command prefix, for a launcher that has one.
    pub(crate) fn prefix(&self) -> Option<&Prefix> {
        match &self.how {
            How::Local => None,
            How::Command(prefix) => Some(prefix),
        }
    }
}

impl Prefix {
    /// The whole command that starts `words` (the worker's command line)
    /// on the other side.
    pub(crate) fn argv(&self, words: &[OsString]) -> Vec<OsString> {
        let mut argv = self.words.clone();
        if let Some(target) = &self.target {
            argv.push("--".into());
            argv.push(target.clone());
        }
        if self.shell {
            let quoted: Vec<OsString> = words.iter().map(|w| shell_quote(w)).collect();
            argv.push(quoted.join(OsStr::new(" ")));
        } else {
            argv.extend(words.iter().cloned());
        }
        argv
    }

    /// The launcher as error messages name it: the prefix and its target.
    pub(crate) fn describe(&self) -> String {
        let mut words: Vec<String> = self
            .words
            .iter()
            .map(|w| w.to_string_lossy().into_owned())
            .collect();
        if let Some(target) = &self.target {
            words.push(target.to_string_lossy().into_owned());
        }
        words.join(" ")
    }
}

/// `word` as one word for a POSIX shell: unchanged if it holds nothing a
/// shell treats specially, else in single quotes (each `'` as `'\''`).
fn shell_quote(word: &OsStr) -> OsString {
    let bytes = word.as_bytes();
    let plain = |b: &u8| b.is_ascii_alphanumeric() || b"_-./=,:@%+".contains(b);
    if !bytes.is_empty() && bytes.iter().all(plain) {
        return word.to_os_string();
    }
    let mut quoted = Vec::with_capacity(bytes.len() + 2);
    quoted.push(b'\'');
    for &b in bytes {
        if b == b'\'' {
            quoted.extend_from_slice(b"'\\''");
        } else {
            quoted.push(b);
        }
    }
    quoted.push(b'\'');
    OsString::from_vec(quoted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_for_the_remote_shell_and_survive_it() {
        let words: Vec<OsString> = [
            "env",
            "K=v,1",
            "/path with space/prog",
            "it's",
            "",
            "$HOME;rm",
        ]
        .map(OsString::from)
        .into();
        let argv = Launcher::ssh("node").prefix().unwrap().argv(&words);
        let line = argv.last().unwrap().clone();
        assert_eq!(
            line,
            OsString::from("env K=v,1 '/path with space/prog' 'it'\\''s' '' '$HOME;rm'")
        );
        assert_eq!(argv[argv.len() - 3..argv.len() - 1], ["--", "node"]);
        // What a shell makes of it: the same words.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\n' {}", line.to_string_lossy()))
            .output()
            .unwrap();
        let back: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
        assert_eq!(
            back,
            [
                "env",
                "K=v,1",
                "/path with space/prog",
                "it's",
                "",
                "$HOME;rm"
            ]
        );
    }

    #[test]
    fn a_plain_prefix_gets_the_words_as_they_are() {
        let words: Vec<OsString> = ["a b", "c"].map(OsString::from).into();
        let argv = Launcher::srun().prefix().unwrap().argv(&words);
        assert_eq!(argv, ["srun", "--quiet", "-u", "-N1", "-n1", "a b", "c"]);
        assert!(Launcher::default().is_local());
    }
}
