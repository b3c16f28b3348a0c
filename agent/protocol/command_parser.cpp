// TODO: implemented in the next commit
