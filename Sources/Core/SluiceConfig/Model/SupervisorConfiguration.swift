/// The `supervisor:` section (a sluice extension): which user workers run as, heartbeats and restart policy.
public struct SupervisorConfiguration: Sendable, Equatable, Codable {
    /// The unprivileged user the workers run as.
    public var user = "sluice"
    /// The workers' group; nil means the user's primary group.
    public var group: String?
    public var heartbeatInterval: Duration = .seconds(1)
    /// A worker silent for this long is killed and restarted; always longer than `heartbeatInterval`.
    public var heartbeatTimeout: Duration = .seconds(5)
    public var restart = RestartPolicy()
    /// How long a worker has to exit after SIGTERM before it is killed.
    public var stopTimeout: Duration = .seconds(5)

    public init() {}
}

/// Exponential backoff with an intensity limit (OTP style): more than `maxRestarts` restarts within `window`
/// makes the supervisor give up and exit so that systemd's `Restart=` takes over.
public struct RestartPolicy: Sendable, Equatable, Codable {
    public var minDelay: Duration = .milliseconds(100)
    public var maxDelay: Duration = .seconds(30)
    public var maxRestarts = 10
    public var window: Duration = .seconds(60)
    /// A worker that has run this long is considered healthy again and its backoff resets.
    public var stableAfter: Duration = .seconds(30)

    public init() {}
}

/// The top-level `keepalive:` section: how the keepalive worker behaves.
public struct KeepaliveConfiguration: Sendable, Equatable, Codable {
    /// Which WireGuard implementation runs the links.
    public enum Backend: String, Sendable, Equatable, Codable, CaseIterable {
        /// The kernel module when `ip link add NAME type wireguard` works, otherwise wireguard-go.
        case auto
        /// The kernel module only; links fail (and say why) without it.
        case kernel
        /// Debian's wireguard-go, even when the kernel module is there.
        case wireguardGo = "wireguard-go"
    }

    public var backend: Backend = .auto
    /// Hold a systemd-logind sleep inhibitor while links are up.
    public var inhibitSleep = false
    /// How often link liveness (handshakes, counters) is checked.
    public var interval: Duration = .seconds(5)
    /// A peer whose last handshake is older than this (or that never had one, once its link has been up this long)
    /// gets its endpoint name re-resolved. WireGuard rekeys every 120 s, so 135 s means a missed rekey.
    public var handshakeTimeout: Duration = .seconds(135)
    /// A peer whose tx counter grows while its rx counter stays flat this long gets its endpoint re-resolved.
    public var rxTimeout: Duration = .seconds(15)

    public init() {}
}
