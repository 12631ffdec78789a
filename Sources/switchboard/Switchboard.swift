import ArgumentParser

@main
struct Switchboard: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchboard",
        abstract: "A WebSocket realtime gateway with Tencent Cloud Chat's login semantics.",
        subcommands: [ServeCommand.self, UserSigCommand.self])
}
