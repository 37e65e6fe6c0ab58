import Foundation
import PackagePlugin

/// Records the commit the package is built from for `BuildInfo.commit`: before every build, a shell writes
/// `BuildCommit.swift` (`package let buildCommit = "<12 hex digits>"`) into the plugin's work directory under
/// `.build`, so nothing generated lands in the source tree. Without a `.git` in the package directory (a source
/// archive) or without git, the commit is `unknown`. The file is rewritten only when the commit changed, so a build
/// at the same commit compiles nothing again, and a new commit recompiles only LedgerBuildCommit and `BuildInfo`.
@main
struct BuildCommitPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appending(path: "generated")
        return [
            .prebuildCommand(
                displayName: "Recording the commit for BuildInfo.commit",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: ["-c", Self.script, "build-commit", context.package.directoryURL.path, output.path],
                outputFilesDirectory: output
            )
        ]
    }

    /// `$1` the package directory, `$2` the output directory. Only `.git` in the package directory itself counts:
    /// git would otherwise search upwards and report the commit of whatever repository holds an unpacked archive.
    static let script = #"""
        set -u
        commit=unknown
        if [ -e "$1/.git" ]; then
            commit=$(git -C "$1" rev-parse --short=12 HEAD 2>/dev/null) || commit=unknown
        fi
        case "$commit" in *[!0-9a-f]* | "") commit=unknown ;; esac
        mkdir -p "$2"
        text="// Generated before the build from the checkout's HEAD; never committed.
        package let buildCommit = \"$commit\""
        if [ ! -f "$2/BuildCommit.swift" ] || [ "$(cat "$2/BuildCommit.swift")" != "$text" ]; then
            printf '%s\n' "$text" > "$2/BuildCommit.swift"
        fi
        """#
}
