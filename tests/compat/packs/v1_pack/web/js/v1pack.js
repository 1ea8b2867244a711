console.log("v1pack extension");
