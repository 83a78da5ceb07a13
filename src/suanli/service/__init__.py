"""The pool service: service functions over the store, and the controller's reconcile loop."""
