"""The API's routes, one module per noun. A route is thin: a payload in, one service function
(which authorizes the caller and holds every rule), a response model out."""
