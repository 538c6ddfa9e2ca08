"""The Faust app and the processes that run it (`badges worker`, `badges dev`)."""
