package scorer

// Falco field names the scorer reads, current name first and older aliases
// after it. Falco 0.41 moved container metadata to the container plugin; the
// names mostly stayed, and the aliases cover older rules and k8smeta.
var (
	FieldContainerID     = []string{"container.id"}
	FieldContainerName   = []string{"container.name"}
	FieldImage           = []string{"container.image"}
	FieldImageRepository = []string{"container.image.repository"}
	FieldImageTag        = []string{"container.image.tag"}
	// Not container.image.id: that is the local image id, which would
	// give the same image a second key beside its registry digest.
	FieldImageDigest = []string{"container.image.digest"}
	FieldNamespace   = []string{"k8s.ns.name", "k8smeta.ns.name", "ka.target.namespace"}
	FieldPod         = []string{"k8s.pod.name", "k8smeta.pod.name"}
	FieldEvtType     = []string{"evt.type"}
	FieldProcName    = []string{"proc.name"}
	FieldProcPID     = []string{"proc.pid", "proc.vpid"}
	FieldProcPPID    = []string{"proc.ppid"}
	FieldProcExePath = []string{"proc.exepath", "proc.exe"}
	FieldProcCmdline = []string{"proc.cmdline"}
	FieldParentName  = []string{"proc.pname"}
	FieldUser        = []string{"user.name", "user.uid"}
)

// Falco fields the symbolizer reads besides the subject's (see
// rules/falco-scorer_rules.yaml: the observation rules print them).
var (
	FieldEvtRes   = []string{"evt.res"}
	FieldUserUID  = []string{"user.uid"}
	FieldFDName   = []string{"fd.name"}
	FieldFSPath   = []string{"fs.path.name"}
	FieldArgFlags = []string{"evt.arg.flags"}
	FieldArgMode  = []string{"evt.arg.mode"}
)

// IdentityFields name the container, image, Kubernetes object and process
// of an event: the fields that become image and sequence keys, Subjects and
// log fields. Their values are held to MaxIdentityBytes.
var IdentityFields = [][]string{
	FieldContainerID, FieldContainerName, FieldImage, FieldImageRepository, FieldImageTag, FieldImageDigest,
	FieldNamespace, FieldPod, FieldProcName, FieldParentName, FieldEvtType,
}

// isIdentityField reports whether name is one of IdentityFields.
func isIdentityField(name string) bool {
	for _, names := range IdentityFields {
		for _, n := range names {
			if n == name {
				return true
			}
		}
	}
	return false
}
