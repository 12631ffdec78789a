@main
struct ChatCommand {
    static func main() {}
}
