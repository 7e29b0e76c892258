package sinks

// Checked is Result.checked, the dispatcher's check of a Send's Result.
func Checked(r Result, n int) Result { return r.checked("test", n) }
