import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Where a backup may be written: a new directory in a parent that already exists. The daemon usually runs as a
/// privileged user for whoever may use its control socket, so it must not create directory trees, write into a
/// directory that holds other files, or follow a path that ends in something other than a new name.
public enum BackupDestination {
    /// Why `path` cannot receive a backup, as the end of a sentence that names it ("… because it already
    /// exists"), or nil when it can.
    public static func problem(_ path: String) -> String? {
        guard path.hasPrefix("/") else { return "it is not an absolute path" }
        guard !path.utf8.contains(0) else { return "it contains a NUL byte" }
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "it is not an absolute path" }
        let name = trimmed[trimmed.index(after: slash)...]
        guard !name.isEmpty, name != ".", name != ".." else {
            return "it does not end in the name of a new directory"
        }
        let parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        var status = stat()
        guard stat(parent, &status) == 0 else {
            let reason = String(cString: strerror(errno))
            return "its parent directory \(parent) cannot be used (\(reason)); the parent must exist"
        }
        guard (status.st_mode & S_IFMT) == S_IFDIR else { return "its parent \(parent) is not a directory" }
        if lstat(String(trimmed), &status) == 0 {
            return "it already exists; a backup is written into a new directory, so it never mixes with other files"
        }
        guard errno == ENOENT else { return "it cannot be examined: \(String(cString: strerror(errno)))" }
        return nil
    }
}
