import ArgumentParser
import WorkerRuntime

/// `sluiced`: the supervisor of the sluice suite.
@main
struct Sluiced: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sluiced",
        abstract: "Supervisor of the sluice TUN proxy suite: validates the config, runs and watches the workers.",
        discussion: """
            Configuration is YAML in mihomo (Clash.Meta) spelling; see docs/configuration.md.
            `sluiced check -c FILE` validates a file without running anything.
            """,
        version: SluiceVersion.banner("sluiced"),
        subcommands: [RunCommand.self, CheckCommand.self, StatusCommand.self, SelectCommand.self, ReloadCommand.self]
    )
}
