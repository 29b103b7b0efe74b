/// The outbounds every configuration has without declaring them: what a rule, a group member or a listener's
/// `proxy:` may name besides the configured proxies and groups.
///
/// One enum, so that the loader (which names it checks), the rule engine (its own decisions: `mode direct`, no rule
/// matched), the groups (an unavailable group resolves to REJECT) and the router (what each one means for a flow)
/// spell them the same way; the raw value is mihomo's spelling, which is also what logs and the API show.
public enum BuiltinTarget: String, Sendable, CaseIterable, Hashable {
    /// Straight out, from this machine.
    case direct = "DIRECT"
    /// Refused at once: a TCP reset, ICMP port unreachable, a SOCKS/HTTP refusal.
    case reject = "REJECT"
    /// Dropped without an answer (a SYN that is never answered); after accept it resets like REJECT.
    case rejectDrop = "REJECT-DROP"
    /// Hijacked DNS: the session is served by the dns worker, never a rule's choice.
    case dns = "DNS"
    /// Continue with the next rule; sluice cannot continue matching from a group, so a group that picks it rejects.
    case pass = "PASS"
    /// mihomo's direct outbound for an empty group; a configuration may list it as a member, and then it is DIRECT.
    case compatible = "COMPATIBLE"
    /// mihomo's built-in select group that `mode: global` sends everything to.
    case global = "GLOBAL"

}
