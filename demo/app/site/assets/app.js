document.querySelector("h1").title = "deployed by gantry";
